//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshpool/meshpool/e2e/netns"
	"github.com/meshpool/meshpool/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func TestCommandRunsInsideTheHost(t *testing.T) {
	n := netns.New(t, "cmd")
	a := n.AddHost("a")
	out, err := a.Command(t.Context(), "ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ifaces = append(ifaces, strings.Fields(line)[1])
	}
	if !slices.Equal(ifaces, []string{"lo", "eth1"}) || !strings.Contains(string(out), " "+a.IP+"/24 ") {
		t.Fatalf("in host a, want only lo and eth1 with %s/24, got:\n%s", a.IP, out)
	}
	if addr, err := netip.ParseAddr(a.IP); err != nil || !n.Subnet.Contains(addr) {
		t.Fatalf("host IP %s not in %s", a.IP, n.Subnet)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := netns.New(t, "tcp")
	a, b, c := n.AddHost("a"), n.AddHost("b"), n.AddHost("c")
	hosts := []*netns.Host{a, b, c}
	for _, h := range hosts {
		serveHello(t, h)
	}
	pairs := func(pred func(from, to *netns.Host) bool) [][2]*netns.Host {
		var ps [][2]*netns.Host
		for _, from := range hosts {
			for _, to := range hosts {
				if from != to && pred(from, to) {
					ps = append(ps, [2]*netns.Host{from, to})
				}
			}
		}
		return ps
	}
	all := pairs(func(_, _ *netns.Host) bool { return true })
	// A network just made may need a moment under load (the first ARP
	// resolution on a busy machine): poll, as every other check here does.
	for _, p := range all {
		var err error
		testutil.Eventually(t, 5*time.Second, p[0].Name+" → "+p[1].Name+" before the partition", func() bool {
			err = hello(p[0], p[1])
			return err == nil
		})
	}

	if err := a.Partition(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs(func(from, to *netns.Host) bool { return from == a || to == a }) {
		if err := hello(p[0], p[1]); err == nil {
			t.Fatalf("%s → %s connected during the partition", p[0].Name, p[1].Name)
		} else {
			t.Logf("%s → %s during the partition: %v", p[0].Name, p[1].Name, err)
		}
	}
	if err := hello(b, c); err != nil {
		t.Fatalf("b → c during a's partition: %v", err)
	}

	if err := a.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	testutil.Eventually(t, 5*time.Second, "every host reaches every other after Heal", func() bool {
		for _, p := range all {
			if hello(p[0], p[1]) != nil {
				return false
			}
		}
		return true
	})
	t.Logf("Heal to every pair connected: %s", time.Since(healed).Round(time.Millisecond))
}

const helloPort = "7000"

// serveHello answers every connection to h:7000 with "hello <client IP>".
func serveHello(t *testing.T, h *netns.Host) {
	t.Helper()
	l, err := h.Listen("tcp", net.JoinHostPort(h.IP, helloPort))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(conn, "hello %s\n", host)
			conn.Close()
		}
	})
}

// hello connects from one host to the other's hello server and checks that
// the other saw the connection come from from's address on eth1.
func hello(from, to *netns.Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	conn, err := from.DialContext(ctx, "tcp", net.JoinHostPort(to.IP, helloPort))
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if want := "hello " + from.IP + "\n"; line != want {
		return fmt.Errorf("got %q, want %q", line, want)
	}
	return nil
}

// record is the part of a node record the test reads.
type record struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	IP      string `json:"ip"`
	HTTPURL string `json:"http_url"`
}

type clusterStatus struct {
	Master  *record  `json:"master"`
	Term    int64    `json:"term"`
	Members []record `json:"members"`
}

func (s clusterStatus) member(id string) bool {
	return slices.ContainsFunc(s.Members, func(r record) bool { return r.ID == id })
}

// nodeStatus is the part of a node's /status the test reads.
type nodeStatus struct {
	ID      string   `json:"id"`
	Routes  []string `json:"routes"`
	Members []record `json:"members"`
	Master  struct {
		ID string `json:"id"`
	} `json:"master"`
	Worker struct {
		Completed int64 `json:"completed"`
	} `json:"worker"`
}

func TestClusterAcrossHosts(t *testing.T) {
	netns.Require(t)
	bin := buildMeshpool(t)
	const (
		prefix = "/netns"
		ttl    = 3 * time.Second
	)

	n := netns.New(t, "cluster")
	etcdHost := n.AddHost("etcd")
	nodes := []*netns.Host{n.AddHost("a"), n.AddHost("b"), n.AddHost("c")}
	byName := map[string]*netns.Host{}
	for _, h := range nodes {
		byName[h.Name] = h
	}

	etcd := startEtcd(t, etcdHost)
	// The test watches the nodes from the etcd host, through the bridge.
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DialContext: etcdHost.DialContext, DisableKeepAlives: true},
	}
	nodeView := func(h *netns.Host) (nodeStatus, error) {
		var s nodeStatus
		resp, err := client.Get("http://" + net.JoinHostPort(h.IP, "8222") + "/status")
		if err != nil {
			return s, err
		}
		defer resp.Body.Close()
		return s, json.NewDecoder(resp.Body).Decode(&s)
	}
	status := func() (clusterStatus, error) {
		var s clusterStatus
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		cmd := etcdHost.Command(ctx, bin, "status", "--etcd", etcd, "--prefix", prefix, "--json", "--timeout", "2s")
		cmd.Env = append(os.Environ(), "MESHPOOL_ETCD=", "MESHPOOL_PREFIX=")
		out, err := cmd.Output()
		if err != nil {
			return s, err
		}
		return s, json.Unmarshal(out, &s)
	}

	started := time.Now()
	procs := map[string]*netns.Process{}
	for _, h := range nodes {
		procs[h.Name] = h.Start(t, bin, "node", "--etcd", etcd, "--prefix", prefix, "--interface", "eth1",
			"--name", h.Name, "--ttl", ttl.String(), "--task-interval", "200ms", "--work-time", "20ms-100ms",
			"--log-format", "json")
	}

	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "status shows 3 members and a master", func() bool {
		var err error
		st, err = status()
		return err == nil && len(st.Members) == 3 && st.Master != nil && st.Term > 0
	})
	for _, m := range st.Members {
		h, ok := byName[m.Name]
		if !ok || m.IP != h.IP {
			t.Fatalf("member %s registered ip %s, want eth1's address of host %s", m.ID, m.IP, m.Name)
		}
	}
	routed := func(hosts []*netns.Host, routes int, members ...string) bool {
		for _, h := range hosts {
			s, err := nodeView(h)
			if err != nil || len(s.Routes) != routes || len(s.Members) != len(members) {
				return false
			}
			for _, id := range members {
				if !slices.ContainsFunc(s.Members, func(r record) bool { return r.ID == id }) {
					return false
				}
			}
		}
		return true
	}
	ids := []string{st.Members[0].ID, st.Members[1].ID, st.Members[2].ID}
	testutil.Eventually(t, 20*time.Second, "every node routed with both peers", func() bool { return routed(nodes, 2, ids...) })
	t.Logf("3 nodes started to fully routed with master %s: %s", st.Master.ID, time.Since(started).Round(time.Millisecond))

	// Cut off a worker.
	var worker record
	for _, m := range st.Members {
		if m.ID != st.Master.ID {
			worker = m
		}
	}
	w := byName[worker.Name]
	var others []*netns.Host
	var otherIDs []string
	for _, m := range st.Members {
		if m.ID != worker.ID {
			others, otherIDs = append(others, byName[m.Name]), append(otherIDs, m.ID)
		}
	}
	if err := w.Partition(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	deadline := ttl + 2*time.Second
	testutil.Eventually(t, deadline, "the partitioned worker gone from etcd", func() bool {
		s, err := status()
		return err == nil && len(s.Members) == 2 && !s.member(worker.ID)
	})
	t.Logf("partition of %s to gone from etcd: %s (ttl %s)", worker.ID, time.Since(cut).Round(time.Millisecond), ttl)
	testutil.Eventually(t, deadline-time.Since(cut), "the others drop the worker from members and routes", func() bool {
		return routed(others, 1, otherIDs...)
	})
	t.Logf("partition of %s to dropped by both others (members and routes): %s", worker.ID, time.Since(cut).Round(time.Millisecond))

	// Bring it back.
	if err := w.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	testutil.Eventually(t, 20*time.Second, "the worker registered again", func() bool {
		s, err := status()
		return err == nil && len(s.Members) == 3 && s.member(worker.ID)
	})
	t.Logf("heal to registered again: %s", time.Since(healed).Round(time.Millisecond))
	testutil.Eventually(t, 20*time.Second, "every node routed with both peers again", func() bool { return routed(nodes, 2, ids...) })
	t.Logf("heal to fully routed again: %s", time.Since(healed).Round(time.Millisecond))

	before, err := nodeView(w)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the worker completes tasks again", func() bool {
		s, err := nodeView(w)
		return err == nil && s.Worker.Completed > before.Worker.Completed
	})
	t.Logf("heal to a task done by %s: %s", worker.ID, time.Since(healed).Round(time.Millisecond))

	st2, err := status()
	if err != nil {
		t.Fatal(err)
	}
	if st2.Master == nil || st2.Master.ID != st.Master.ID || st2.Term != st.Term {
		t.Errorf("master changed across a worker's partition: was %s (term %d), now %+v (term %d)", st.Master.ID, st.Term, st2.Master, st2.Term)
	}
	if log := procs[w.Name].Output(); !strings.Contains(log, `"msg":"lease lost, registering again"`) || strings.Count(log, `"msg":"registered"`) < 2 {
		t.Errorf("the worker's log shows no lease loss and second registration")
	}
}

// buildMeshpool builds the binary for this test.
func buildMeshpool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshpool")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meshpool/meshpool/cmd/meshpool").CombinedOutput()
	if err != nil {
		t.Fatalf("cannot build meshpool: %v\n%s", err, out)
	}
	return bin
}

// startEtcd runs a single-member etcd server on h's IP and returns its
// client address.
func startEtcd(t *testing.T, h *netns.Host) string {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatal("no etcd on PATH; run scripts/install-test-deps.sh")
	}
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "meshpool-netns-etcd-"); err == nil {
		// etcd fsyncs every write; memory-backed storage keeps tests fast.
		dir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	client := net.JoinHostPort(h.IP, "2379")
	curl, purl := "http://"+client, "http://"+net.JoinHostPort(h.IP, "2380")
	h.Start(t, "etcd", "--name", "netns", "--data-dir", dir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "netns="+purl, "--log-level", "error", "--logger", "zap")
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
	testutil.Eventually(t, 20*time.Second, "etcd serves /health", func() bool {
		resp, err := hc.Get(curl + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return client
}
