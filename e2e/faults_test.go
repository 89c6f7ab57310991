package e2e_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/e2e/netns"
	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/audit"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/tcpproxy"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// The fault suite: a stream of submitted tasks, one fault in the middle of
// it, and the invariant checked from etcd's history of the task records:
// every accepted task has exactly one recorded result, and no record was
// written by a term that was already over. The tasks are of a kind the
// nodes run with --exec, a shell script, as a user's would be.

const (
	faultTTL   = 3 * time.Second
	faultTasks = 1200
	faultRate  = 200 // submissions per second: the stream lasts 6s
	// faultKind is the stream's kind; faultHandler, run by every node with
	// --exec, answers {"echo":PAYLOAD} after 20ms.
	faultKind    = "echo"
	faultHandler = "testdata/fault-handler.sh"
	// faultSlots lets a worker run every task it is given at once: the
	// default, the CPU count, would make the stream queue at the master
	// instead of testing the faults.
	faultSlots = 64
)

// pcluster is etcd and three meshpool node processes, on loopback
// addresses or on hosts in network namespaces.
type pcluster struct {
	t      *testing.T
	prefix string
	cli    *clientv3.Client // for the audit and the master, from the test process
	httpc  *http.Client     // reaches every node's HTTP port
	nodes  []*pnode

	etcd *etcdProc // loopback only: stopped and started by a fault
}

// pnode is one meshpool node process.
type pnode struct {
	ip, name string
	signal   func(syscall.Signal)
	output   func() string
	natsURL  string      // a URL the test process can reach the node's NATS port at
	host     *netns.Host // the node's host, in a namespace cluster
}

func (n *pnode) httpURL() string   { return "http://" + n.ip + ":8222" }
func (n *pnode) clientURL() string { return n.natsURL }

// nodeArgs are the flags every fault-suite node runs with. The demo kind
// stays (--work-time is its), for the other tests that start these clusters.
func nodeArgs(t *testing.T, etcd, prefix, name string) []string {
	t.Helper()
	handler, err := filepath.Abs(faultHandler)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"node", "--etcd", etcd, "--prefix", prefix, "--name", name, "--ttl", faultTTL.String(),
		"--task-interval", "0", "--work-time", "5ms-50ms", "--task-timeout", "5s", "--result-retention", "10m",
		"--exec", faultKind + "=" + handler, "--slots", strconv.Itoa(faultSlots),
		"--log-format", "json"}
}

func newPCluster(t *testing.T, net int) *pcluster {
	t.Helper()
	c := &pcluster{t: t, etcd: newEtcd(t), prefix: "/faults", httpc: &http.Client{Timeout: 2 * time.Second}}
	c.cli = newEtcdClient(t, c.etcd.endpoint)
	c.startNodes(net, c.etcd.endpoint)
	return c
}

// newEtcd3Cluster is newPCluster on a three-member etcd cluster; the nodes
// are given every member's endpoint.
func newEtcd3Cluster(t *testing.T, net int) (*pcluster, []*etcdProc) {
	t.Helper()
	members := startEtcdCluster(t)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.endpoint)
	}
	c := &pcluster{t: t, prefix: "/faults", httpc: &http.Client{Timeout: 2 * time.Second}}
	// The test's own client avoids the member that will be killed.
	c.cli = newEtcdClient(t, members[2].endpoint)
	c.startNodes(net, strings.Join(endpoints, ","))
	return c, members
}

func (c *pcluster) startNodes(net int, etcd string) {
	t := c.t
	t.Helper()
	for i := range 3 {
		n := &pnode{ip: fmt.Sprintf("127.0.%d.%d", net, i+2), name: string(rune('a' + i))}
		n.natsURL = "nats://" + n.ip + ":4222"
		p := start(t, "node "+n.name, append([]string{binary}, append(nodeArgs(t, etcd, c.prefix, n.name), "--advertise", n.ip)...)...)
		n.signal, n.output = p.signal, p.out.String
		c.nodes = append(c.nodes, n)
	}
	c.waitFormed()
}

func newEtcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := etcdclient.New([]string{endpoint}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *pcluster) waitFormed() {
	c.t.Helper()
	testutil.Eventually(c.t, 20*time.Second, "3 members routed with a master", func() bool {
		return len(c.routedMembers()) == 3 && c.master() != nil
	})
}

// newNSCluster runs etcd and three nodes on hosts of their own, on a bridge,
// each node choosing its address from its interface eth1 as in the
// article's Vagrant set-up. The test process reaches them through proxies
// that dial from inside the etcd host.
func newNSCluster(t *testing.T) *pcluster {
	t.Helper()
	n := netns.New(t, "faults")
	eh := n.AddHost("etcd")
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "meshpool-faults-etcd-"); err == nil {
		dir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	curl, purl := "http://"+eh.IP+":2379", "http://"+eh.IP+":2380"
	eh.Start(t, "etcd", "--name", "ns", "--data-dir", dir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "ns="+purl, "--log-level", "error", "--logger", "zap")
	c := &pcluster{t: t, prefix: "/faults",
		httpc: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: eh.DialContext, DisableKeepAlives: true}}}
	c.cli = newEtcdClient(t, proxyInto(t, eh, eh.IP+":2379"))
	endpoint := eh.IP + ":2379"
	for i := range 3 {
		h := n.AddHost(string(rune('a' + i)))
		node := &pnode{ip: h.IP, name: h.Name, host: h}
		node.natsURL = "nats://" + proxyInto(t, eh, h.IP+":4222")
		p := h.Start(t, binary, append(nodeArgs(t, endpoint, c.prefix, h.Name), "--interface", "eth1")...)
		node.signal = func(sig syscall.Signal) { _ = p.Signal(sig) }
		node.output = p.Output
		c.nodes = append(c.nodes, node)
	}
	c.waitFormed()
	return c
}

// proxyInto returns a loopback address that forwards to addr, dialled from
// inside h.
func proxyInto(t *testing.T, h *netns.Host, addr string) string {
	t.Helper()
	p, err := tcpproxy.StartFunc(func(ctx context.Context) (net.Conn, error) { return h.DialContext(ctx, "tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.Addr()
}

// routedMembers are the nodes whose /status shows routes to every other live member.
func (c *pcluster) routedMembers() []*pnode {
	mem, err := registry.List(c.t.Context(), c.cli, c.prefix)
	if err != nil {
		return nil
	}
	var out []*pnode
	for _, n := range c.nodes {
		var s nodeStatus
		err := getJSONWith(c.httpc, n.httpURL()+"/status", &s)
		if err == nil && len(s.Routes) == len(mem.Members)-1 && len(mem.Members) == 3 {
			out = append(out, n)
		}
	}
	return out
}

// master is the node etcd names master, if any.
func (c *pcluster) master() *pnode {
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
	defer cancel()
	l, err := election.CurrentLeader(ctx, c.cli, c.prefix)
	if err != nil || l.ID == "" {
		return nil
	}
	return c.byID(l.ID)
}

func (c *pcluster) byID(id string) *pnode {
	for _, n := range c.nodes {
		if strings.HasPrefix(id, n.name+"-") {
			return n
		}
	}
	return nil
}

// busyWorker is a worker that has tasks in flight right now.
func (c *pcluster) busyWorker(master *pnode) *pnode {
	var found *pnode
	testutil.Eventually(c.t, 5*time.Second, "a worker with tasks in flight", func() bool {
		for _, n := range c.nodes {
			if n == master {
				continue
			}
			if s, err := httpWorkerInFlight(c.httpc, n.httpURL()); err == nil && s > 0 {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// suppressed sums, over the nodes still up, the results recorded no second
// time and the redeliveries workers answered without working again.
func (c *pcluster) suppressed() int64 {
	var total int64
	for _, n := range c.nodes {
		if s, err := httpCounters(c.httpc, n.httpURL()); err == nil {
			total += s
		}
	}
	return total
}

// stream submits tasks of faultKind at a steady rate, each retried with its
// uuid until the master answers. Task i's payload is {"n":i}; one task in
// five fails its first attempt and is retried ({"n":i,"fail":1}), one in
// seven is delayed (delayed keeps by how much), so that each fault strikes
// tasks retrying and waiting for their time as well as running ones.
type stream struct {
	mu       sync.Mutex
	accepted []string
	delayed  map[string]time.Duration
	flaky    map[string]bool
	failed   int
	done     chan struct{}
}

// streamTask is task i of a stream: its payload and options.
func streamTask(i int) (payload json.RawMessage, opts message.Options) {
	payload = json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)
	if i%5 == 1 {
		payload = json.RawMessage(`{"n":` + strconv.Itoa(i) + `,"fail":1}`)
		opts.Backoff = message.Duration(200 * time.Millisecond)
	}
	if i%7 == 3 {
		opts.Delay = message.Duration(time.Second + time.Duration(i%3)*500*time.Millisecond)
	}
	return payload, opts
}

func startStream(t *testing.T, ctx context.Context, url string, n, rate int) *stream {
	t.Helper()
	// Only the URL given: the addresses the cluster advertises may not be
	// reachable from the test process.
	cl, err := client.Dial(url, nats.IgnoreDiscoveredServers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s := &stream{done: make(chan struct{}), delayed: map[string]time.Duration{}, flaky: map[string]bool{}}
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := range n {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
			if ctx.Err() != nil {
				break
			}
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
				defer cancel()
				payload, opts := streamTask(i)
				reply, err := cl.Submit(sctx, message.Submit{Kind: faultKind, Payload: payload, Options: opts})
				s.mu.Lock()
				defer s.mu.Unlock()
				if err != nil {
					s.failed++
					return
				}
				s.accepted = append(s.accepted, reply.UUID)
				if opts.Delay > 0 {
					s.delayed[reply.UUID] = opts.Delay.D()
				}
				s.flaky[reply.UUID] = opts.Backoff > 0
			})
		}
		wg.Wait()
	}()
	return s
}

func (s *stream) acceptedSoFar() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepted...)
}

type faultRow struct {
	name                     string
	accepted, recorded, lost int
	twice, stale, suppressed int64
	unaccepted               int
	recover                  time.Duration
}

var (
	faultTableMu sync.Mutex
	faultTable   []faultRow
)

// runFault runs one fault against a fresh cluster and checks the invariant.
func runFault(t *testing.T, c *pcluster, f fault) faultRow {
	t.Helper()
	ctx := t.Context()
	a, err := audit.Start(ctx, c.cli, c.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	master := c.master()
	s := startStream(t, ctx, f.via(c, master).clientURL(), faultTasks, faultRate)
	testutil.Eventually(t, 20*time.Second, "a third of the stream accepted", func() bool { return len(s.acceptedSoFar()) >= faultTasks/3 })

	before := s.acceptedSoFar()
	injected := time.Now()
	f.inject(t, c, master)
	if !testutil.Within(60*time.Second, func() bool { return a.Recorded(before) == len(before) }) {
		c.explainMissing(a.Missing(before, 5))
		t.Fatalf("%d of %d tasks accepted before the fault not recorded within 60s", len(before)-a.Recorded(before), len(before))
	}
	recovered := time.Since(injected)

	select {
	case <-s.done:
	case <-time.After(90 * time.Second):
		t.Fatal("the stream did not finish")
	}
	all := s.acceptedSoFar()
	if !testutil.Within(60*time.Second, func() bool { return a.Recorded(all) == len(all) }) {
		c.explainMissing(a.Missing(all, 5))
		t.Fatalf("%d of %d accepted tasks not recorded within 60s", len(all)-a.Recorded(all), len(all))
	}
	rep, err := a.Check(all)
	if err != nil {
		t.Fatal(err)
	}
	row := faultRow{name: f.name, accepted: rep.Accepted, recorded: rep.Recorded, lost: rep.Lost,
		twice: int64(rep.Twice), stale: int64(len(rep.Stale)), suppressed: c.suppressed(), unaccepted: s.failed, recover: recovered}
	faultTableMu.Lock()
	faultTable = append(faultTable, row)
	faultTableMu.Unlock()
	t.Logf("%s: %s; %d duplicates suppressed; %d submissions not accepted; recovered in %s",
		f.name, rep, row.suppressed, s.failed, recovered.Round(time.Millisecond))
	if !rep.OK() || rep.Accepted < faultTasks*9/10 {
		t.Fatalf("invariant broken or too few accepted: %s; stale: %v", rep, rep.Stale)
	}
	c.checkResults(all, s)
	return row
}

// checkResults reads the records of the accepted tasks and checks that each
// is of faultKind and that its result is the handler's answer to its own
// payload: the script ran, and no result went to the wrong task. The audit
// counts a task done whatever its result says. A delayed task's last
// attempt started no earlier than its delay after its acceptance; a flaky
// one kept the error of its first attempt.
func (c *pcluster) checkResults(ids []string, s *stream) {
	t := c.t
	t.Helper()
	resp, err := c.cli.Get(t.Context(), keyspace.Tasks(c.prefix), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	records := make(map[string]taskstore.Record, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := taskstore.Decode(string(kv.Key), kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		records[r.UUID] = r
	}
	var wrong []string
	s.mu.Lock()
	defer s.mu.Unlock()
	var late []time.Duration // delayed tasks: how long after their time their last attempt started
	for _, id := range ids {
		r := records[id]
		p := resultProblem(r)
		if d, ok := s.delayed[id]; ok && p == "" && r.Attempts == 1 {
			late = append(late, r.Result.Start.Sub(r.Submitted.Add(d)))
		}
		if d, ok := s.delayed[id]; ok && p == "" && r.Result.Start.Add(time.Millisecond).Before(r.Submitted.Add(d)) {
			p = fmt.Sprintf("delayed %s from %s, started early at %s", d, r.Submitted.Format(message.TimeLayout), r.Result.Start)
		}
		// A flaky task's first attempt fails, or a fault ends it first.
		if s.flaky[id] && p == "" && (r.Attempts < 2 || !slices.ContainsFunc(r.Errors, func(e message.AttemptError) bool { return e.Attempt == 1 })) {
			p = fmt.Sprintf("a flaky task done at attempt %d with errors %v: its first attempt's error is not kept", r.Attempts, r.Errors)
		}
		if p != "" {
			wrong = append(wrong, id+": "+p)
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d accepted tasks without the handler's answer, e.g. %s", len(wrong), len(ids), strings.Join(wrong[:min(5, len(wrong))], "; "))
	}
	if len(late) > 0 {
		slices.Sort(late)
		t.Logf("%d delayed tasks run at their first attempt started after their time by: median %s, p99 %s, max %s",
			len(late), late[len(late)/2], late[len(late)*99/100], late[len(late)-1])
	}
}

// resultProblem says what is wrong with a faultKind task's record, or "".
func resultProblem(r taskstore.Record) string {
	switch {
	case r.UUID == "":
		return "no record"
	case r.Kind != faultKind:
		return fmt.Sprintf("kind %q, want %q", r.Kind, faultKind)
	case r.State != taskstore.Done || r.Result == nil:
		return fmt.Sprintf("state %s", r.State)
	case r.Result.Error != "":
		return "error: " + r.Result.Error
	}
	var got struct {
		Echo json.RawMessage `json:"echo"`
	}
	var want, echo bytes.Buffer
	if json.Unmarshal(r.Result.Result, &got) != nil || json.Compact(&echo, got.Echo) != nil ||
		json.Compact(&want, r.Payload) != nil || !bytes.Equal(echo.Bytes(), want.Bytes()) {
		return fmt.Sprintf("result %s for payload %s", r.Result.Result, r.Payload)
	}
	return ""
}

// fault is one failure injected into a running cluster.
type fault struct {
	name string
	net  int // the cluster runs on 127.0.<net>.2-4
	// via picks the node the submitter connects to.
	via func(c *pcluster, master *pnode) *pnode
	// inject does the damage and, where the fault has one, the repair.
	inject func(t *testing.T, c *pcluster, master *pnode)
}

func TestFaults(t *testing.T) {
	t.Cleanup(writeFaultTable)
	for _, f := range loopbackFaults() {
		t.Run(f.name, func(t *testing.T) {
			c := newPCluster(t, f.net)
			runFault(t, c, f)
		})
	}
	for _, f := range partitionFaults() {
		t.Run(f.name, func(t *testing.T) {
			c := newNSCluster(t)
			runFault(t, c, f)
		})
	}
	const etcdMemberKilled = "kill -9 of one member of a three-member etcd cluster"
	t.Run(etcdMemberKilled, func(t *testing.T) {
		c, members := newEtcd3Cluster(t, 35)
		runFault(t, c, fault{name: etcdMemberKilled, via: viaWorker,
			inject: func(t *testing.T, c *pcluster, _ *pnode) {
				// The first endpoint is where every node's client starts.
				members[0].proc.signal(syscall.SIGKILL)
			}})
	})
}

// partitionFaults cut a host's link for longer than the TTL, then heal it.
func partitionFaults() []fault {
	partition := func(t *testing.T, c *pcluster, n *pnode) {
		if err := n.host.Partition(); err != nil {
			t.Fatal(err)
		}
		// The others notice within the TTL; the cut host's lease expires.
		testutil.Eventually(t, faultTTL+5*time.Second, "the partitioned node gone from etcd", func() bool {
			mem, err := registry.List(t.Context(), c.cli, c.prefix)
			if err != nil {
				return false
			}
			_, found := mem.Lookup(c.idOf(n))
			return !found
		})
		time.Sleep(time.Second)
		if err := n.host.Heal(); err != nil {
			t.Fatal(err)
		}
		c.waitFormed()
	}
	return []fault{
		{name: "network partition of one worker (link down), then heal", via: viaMaster,
			inject: func(t *testing.T, c *pcluster, master *pnode) { partition(t, c, c.busyWorker(master)) }},
		{name: "network partition of the master from etcd and the others, then heal", via: viaWorker,
			inject: func(t *testing.T, c *pcluster, master *pnode) {
				partition(t, c, master)
				testutil.Eventually(t, 10*time.Second, "another master", func() bool {
					nm := c.master()
					return nm != nil && nm != master
				})
			}},
	}
}

// explainMissing logs what etcd and the nodes say about tasks the audit has
// not seen recorded, to tell a stuck master from a blind audit.
func (c *pcluster) explainMissing(ids []string) {
	for _, id := range ids {
		resp, err := c.cli.Get(context.Background(), c.prefix+"/tasks/"+id)
		if err != nil || len(resp.Kvs) == 0 {
			c.t.Logf("missing %s: no record in etcd (%v)", id, err)
			continue
		}
		c.t.Logf("missing %s: etcd has %s", id, resp.Kvs[0].Value)
	}
	for _, n := range c.nodes {
		var st map[string]any
		if err := getJSONWith(c.httpc, n.httpURL()+"/status", &st); err == nil {
			c.t.Logf("node %s: master %v, dispatch %v, worker %v", n.name, st["master"], st["dispatch"], st["worker"])
		}
	}
}

// idOf is the node ID n registered with, read from etcd's records by name.
func (c *pcluster) idOf(n *pnode) string {
	mem, err := registry.List(c.t.Context(), c.cli, c.prefix)
	if err != nil {
		return ""
	}
	for _, m := range mem.Members {
		if m.Name == n.name {
			return m.ID
		}
	}
	return n.name + "-gone"
}

// aWorker is a node that is neither the master nor not.
func aWorker(c *pcluster, master, not *pnode) *pnode {
	for _, n := range c.nodes {
		if n != master && n != not {
			return n
		}
	}
	return nil
}

func viaMaster(_ *pcluster, master *pnode) *pnode { return master }
func viaWorker(c *pcluster, master *pnode) *pnode { return aWorker(c, master, nil) }

func loopbackFaults() []fault {
	return []fault{
		{name: "kill -9 of a worker in the middle of work", net: 31, via: viaMaster,
			inject: func(t *testing.T, c *pcluster, master *pnode) {
				c.busyWorker(master).signal(syscall.SIGKILL)
			}},
		{name: "kill -9 of the master", net: 32, via: viaWorker,
			inject: func(t *testing.T, c *pcluster, master *pnode) { master.signal(syscall.SIGKILL) }},
		{name: "SIGSTOP of the master past the TTL, then SIGCONT", net: 33, via: viaWorker,
			inject: func(t *testing.T, c *pcluster, master *pnode) {
				l, err := election.CurrentLeader(t.Context(), c.cli, c.prefix)
				if err != nil {
					t.Fatal(err)
				}
				master.signal(syscall.SIGSTOP)
				testutil.Eventually(t, 20*time.Second, "a new master while the old one is paused", func() bool {
					nm := c.master()
					return nm != nil && nm != master
				})
				time.Sleep(time.Second) // the new master works a while, then the old one wakes
				resumed := time.Now()
				master.signal(syscall.SIGCONT)
				// Once awake, the old master sends nothing under its old term:
				// it sees at once that its lease cannot be trusted.
				testutil.Eventually(t, 10*time.Second, "the old master steps down", func() bool {
					return strings.Contains(master.output(), `"msg":"demoted, back to work as a worker"`)
				})
				if late := lateDispatches(master.output(), l.Term, resumed); len(late) > 0 {
					t.Errorf("the deposed master dispatched after waking: %v", late)
				}
			}},
		{name: "etcd stopped for longer than the TTL, then started", net: 34, via: viaWorker,
			inject: func(t *testing.T, c *pcluster, _ *pnode) {
				c.etcd.stop()
				time.Sleep(faultTTL + 2*time.Second)
				c.etcd.start()
			}},
	}
}

// lateDispatches returns the "task sent" log lines of term at or after since.
func lateDispatches(log string, term int64, since time.Time) []string {
	var late []string
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Time   time.Time `json:"time"`
			SentAt time.Time `json:"sent_at"` // when it went out; Time is when the worker's ack was read
			Msg    string    `json:"msg"`
			Term   int64     `json:"term"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "task sent" && e.Term == term && !cmp.Or(e.SentAt, e.Time).Before(since) {
			late = append(late, line)
		}
	}
	return late
}

func writeFaultTable() {
	faultTableMu.Lock()
	defer faultTableMu.Unlock()
	if len(faultTable) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fault suite: %d tasks of kind %s (--exec %s, --slots %d) submitted at %d/s per fault, ttl %s\n\n",
		faultTasks, faultKind, faultHandler, faultSlots, faultRate, faultTTL)
	fmt.Fprintf(&b, "| fault | accepted | results recorded once | recorded twice | stale-term writes | duplicates suppressed | lost | not accepted (gave up) | time to recover |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range faultTable {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %s |\n", r.name,
			r.accepted, r.recorded, r.twice, r.stale, r.suppressed, r.lost, r.unaccepted, r.recover.Round(10*time.Millisecond))
	}
	fmt.Print(b.String())
	if dir := os.Getenv("MESHPOOL_ARTIFACTS"); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, "fault-suite.md"), []byte(b.String()), 0o644)
	}
}
