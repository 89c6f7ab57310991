package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/testutil"
)

// startNode runs `meshpool node` on ip with the default ports.
func startNode(t *testing.T, etcd, prefix, ip, name string, extra ...string) *proc {
	t.Helper()
	args := []string{binary, "node", "--etcd", etcd, "--prefix", prefix, "--advertise", ip, "--name", name,
		"--ttl", "3s", "--task-interval", "200ms", "--work-time", "20ms-100ms", "--log-format", "json"}
	return start(t, "node "+name, append(args, extra...)...)
}

type result struct {
	UUID     string `json:"uuid"`
	Executor string `json:"executor"`
	Number   int64  `json:"number"`
	Result   int64  `json:"result"`
	Start    string `json:"start"`
	Finish   string `json:"finish"`
	Term     int64  `json:"term"`
}

func TestClusterOfProcesses(t *testing.T) {
	etcd := startEtcd(t)
	const prefix = "/e2e"
	ips := []string{"127.0.0.12", "127.0.0.13", "127.0.0.14"}
	procs := map[string]*proc{}
	started := time.Now()
	for i, ip := range ips {
		procs[ip] = startNode(t, etcd, prefix, ip, string(rune('a'+i)))
	}

	// meshpool status --json shows three members and one master.
	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "status shows 3 members and a master", func() bool {
		var ok bool
		st, ok = status(t, etcd, prefix)
		return ok && len(st.Members) == 3 && st.Master != nil && st.Term > 0
	})
	// Every node is routed with the two others.
	testutil.Eventually(t, 20*time.Second, "every node routed with both peers", func() bool {
		for _, m := range st.Members {
			s, err := httpStatus(m.HTTPURL)
			if err != nil || len(s.Routes) != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("3 processes started to fully routed with a master: %s", time.Since(started).Round(time.Millisecond))

	// Results arrive on `results`, through any node.
	var worker record
	for _, m := range st.Members {
		if m.ID != st.Master.ID {
			worker = m
		}
	}
	nc, err := nats.Connect(worker.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var results []result
	if _, err := nc.Subscribe("results", func(m *nats.Msg) {
		var r result
		if json.Unmarshal(m.Data, &r) == nil {
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	got := func(pred func(result) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if pred(r) {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, 15*time.Second, "5 results", func() bool { return got(func(result) bool { return true }) >= 5 })
	if bad := got(func(r result) bool {
		_, e1 := time.Parse(time.RFC3339, r.Start)
		_, e2 := time.Parse(time.RFC3339, r.Finish)
		return r.Result != 3*r.Number || r.Executor == st.Master.ID || e1 != nil || e2 != nil || !strings.Contains(r.Start, ".")
	}); bad != 0 {
		t.Fatalf("%d malformed results: %+v", bad, results)
	}

	// kill -9 of the master: a new master within TTL + 2s, and the dead
	// node leaves every member's view.
	oldMaster, oldTerm := *st.Master, st.Term
	killed := time.Now()
	procs[oldMaster.IP].signal(syscall.SIGKILL)
	var newMaster string
	var newTerm int64
	testutil.Eventually(t, 5*time.Second, "a new master after kill -9", func() bool {
		s, ok := status(t, etcd, prefix)
		if ok && s.Master != nil && s.Master.ID != oldMaster.ID {
			newMaster, newTerm = s.Master.ID, s.Term
			return true
		}
		return false
	})
	t.Logf("kill -9 of the master to new master: %s (ttl 3s)", time.Since(killed).Round(time.Millisecond))
	if newTerm <= oldTerm {
		t.Fatalf("new term %d not above old %d", newTerm, oldTerm)
	}
	testutil.Eventually(t, 5*time.Second, "the dead master gone from every view", func() bool {
		s, ok := status(t, etcd, prefix)
		if !ok || len(s.Members) != 2 {
			return false
		}
		for _, m := range s.Members {
			ns, err := httpStatus(m.HTTPURL)
			if err != nil || len(ns.Members) != 2 || len(ns.Routes) != 1 || ns.Master.ID != newMaster {
				return false
			}
		}
		return true
	})
	testutil.Eventually(t, 10*time.Second, "a result under the new term", func() bool {
		return got(func(r result) bool { return r.Term == newTerm }) > 0
	})

	// SIGTERM of the new master: clean exit, the last node becomes master.
	var newMasterIP string
	for _, m := range st.Members {
		if m.ID == newMaster {
			newMasterIP = m.IP
		}
	}
	stopped := time.Now()
	procs[newMasterIP].signal(syscall.SIGTERM)
	testutil.Eventually(t, 5*time.Second, "the last node becomes master", func() bool {
		s, ok := status(t, etcd, prefix)
		return ok && s.Master != nil && s.Master.ID != newMaster && len(s.Members) == 1
	})
	t.Logf("clean master exit (SIGTERM) to new master: %s", time.Since(stopped).Round(time.Millisecond))
	if code := procs[newMasterIP].wait(t, 10*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	if out := procs[newMasterIP].out.String(); !strings.Contains(out, `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", tail(out, 3000))
	}
}

func TestJoinTime(t *testing.T) {
	etcd := startEtcd(t)
	const prefix = "/join"
	startNode(t, etcd, prefix, "127.0.0.22", "a")
	startNode(t, etcd, prefix, "127.0.0.23", "b")
	testutil.Eventually(t, 20*time.Second, "two nodes routed", func() bool {
		s, ok := status(t, etcd, prefix)
		if !ok || len(s.Members) != 2 {
			return false
		}
		for _, m := range s.Members {
			if ns, err := httpStatus(m.HTTPURL); err != nil || len(ns.Routes) != 1 {
				return false
			}
		}
		return true
	})
	began := time.Now()
	startNode(t, etcd, prefix, "127.0.0.24", "c")
	testutil.Eventually(t, 10*time.Second, "the third node routed with both peers and seen by all", func() bool {
		for _, ip := range []string{"127.0.0.22", "127.0.0.23", "127.0.0.24"} {
			ns, err := httpStatus(fmt.Sprintf("http://%s:8222", ip))
			if err != nil || len(ns.Routes) != 2 || len(ns.Members) != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("node start (process exec) to routed with every peer: %s", time.Since(began).Round(time.Millisecond))
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		oneLine bool
	}{
		{"version", []string{"version"}, 0, "meshpool ", "", false},
		{"help", []string{"--help"}, 0, "meshpool node", "", false},
		{"node help shows defaults", []string{"node", "--help"}, 0, "(default 10s)", "", false},
		{"dev help", []string{"dev", "-h"}, 0, "-nodes", "", false},
		{"status help", []string{"status", "--help"}, 0, "-json", "", false},
		{"no command", nil, 2, "", "no command given", false},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, false},
		{"unknown flag", []string{"node", "--nope"}, 2, "", "flag provided but not defined: -nope", true},
		{"bad duration", []string{"node", "--ttl", "soon", "--advertise", "127.0.0.1"}, 2, "", "invalid value", true},
		{"ttl too short", []string{"node", "--ttl", "500ms", "--advertise", "127.0.0.1"}, 2, "", "ttl must be at least 2s, got 500ms", true},
		{"bad work time", []string{"node", "--work-time", "5s-1s", "--advertise", "127.0.0.1"}, 2, "", "work time", true},
		{"bad advertise", []string{"node", "--advertise", "not-an-ip"}, 2, "", "advertise address", true},
		{"both advertise and interface", []string{"node", "--advertise", "127.0.0.1", "--interface", "lo"}, 2, "", "not both", true},
		{"missing interface", []string{"node", "--interface", "nosuch0"}, 2, "", `interface "nosuch0"`, true},
		{"bad log format", []string{"node", "--advertise", "127.0.0.1", "--log-format", "xml"}, 2, "", "--log-format", true},
		{"stray argument", []string{"status", "extra"}, 2, "", "unexpected argument", true},
		{"bad number", []string{"submit", "--number", "x"}, 2, "", `submit: invalid value "x" for flag -number`, true},
		{"number out of range", []string{"submit", "--number", "1152921504606846977"}, 2, "", "out of range", true},
		{"two bad flags", []string{"node", "--ttl", "1s", "--prefix", "x", "--advertise", "127.0.0.1"}, 2, "", "; ttl must be at least 2s", true},
		{"etcd port not a number", []string{"node", "--etcd", "localhost:abc", "--advertise", "127.0.0.1"}, 2, "", `port "abc"`, true},
		{"status etcd port not a number", []string{"status", "--etcd", "localhost:abc"}, 2, "", `port "abc"`, true},
		{"status bad prefix", []string{"status", "--prefix", "x"}, 2, "", "--prefix", true},
		{"submit bad server", []string{"submit", "--server", "http://127.0.0.1:1", "--number", "1"}, 2, "", "--server", true},
		{"watch bad server", []string{"watch", "--server", ":::"}, 2, "", "--server", true},
		{"submit missing NATS CA", []string{"submit", "--nats-ca", "/nonexistent/ca.pem", "--number", "1"}, 2, "", "--nats-ca", true},
		{"submit zero timeout", []string{"submit", "--timeout", "0", "--number", "1"}, 2, "", "--timeout 0s", true},
		{"submit negative timeout", []string{"submit", "--timeout", "-1s", "--number", "1"}, 2, "", "--timeout -1s", true},
		{"dev etcd port out of range", []string{"dev", "--etcd-port", "70000"}, 2, "", "--etcd-port 70000", true},
		{"submit with no cluster", []string{"submit", "--server", "nats://127.0.0.1:1", "--number", "1"}, 1, "", "cannot connect", false},
		{"status with etcd down", []string{"status", "--etcd", "127.0.0.1:1", "--timeout", "1s"}, 1, "", "cannot read members", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stdout %q / stderr %q, want them to contain %q / %q", stdout, stderr, tt.stdout, tt.stderr)
			}
			if tt.oneLine && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("want a one-line error, got:\n%s", stderr)
			}
			if tt.code == 0 && strings.Count(stdout, "Usage:") > 1 {
				t.Fatalf("usage printed more than once:\n%s", stdout)
			}
			if tt.code != 0 && stdout != "" {
				t.Fatalf("an error must not print to stdout, got:\n%s", stdout)
			}
		})
	}
}

func TestEnvironmentConfiguresTheNode(t *testing.T) {
	// A bad value in the environment is reported with its variable name.
	cmd := []string{"node", "--advertise", "127.0.0.1"}
	_, stderr, code := runEnv(t, []string{"MESHPOOL_TTL=forever"}, cmd...)
	if code != 2 || !strings.Contains(stderr, "MESHPOOL_TTL") {
		t.Fatalf("exit %d, stderr %q; want 2 naming MESHPOOL_TTL", code, stderr)
	}
}

func runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return run(t, args...)
}

func TestDevCluster(t *testing.T) {
	// dev binds the etcd peer port next to the client port: a free port
	// from the ephemeral range may have a taken neighbour, so use fixed
	// ones below it (23998-23999, used by no other test).
	const port = 23998
	dev := start(t, "meshpool dev", binary, "dev", "--nodes", "3", "--etcd-port", fmt.Sprint(port),
		"--task-interval", "200ms", "--work-time", "10ms-50ms")
	var nc *nats.Conn
	testutil.Eventually(t, 20*time.Second, "dev node a accepts NATS clients", func() bool {
		var err error
		nc, err = nats.Connect("nats://127.0.0.2:4222")
		return err == nil
	})
	defer nc.Close()
	sub, err := nc.SubscribeSync("results")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg, err := sub.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("result %d: %v\n%s", i, err, tail(dev.out.String(), 3000))
		}
		var r result
		if err := json.Unmarshal(msg.Data, &r); err != nil || r.Result != 3*r.Number {
			t.Fatalf("bad result %s: %v", msg.Data, err)
		}
	}
	st, ok := status(t, fmt.Sprintf("127.0.0.1:%d", port), "/meshpool")
	if !ok || len(st.Members) != 3 || st.Master == nil {
		t.Fatalf("dev status: %+v", st)
	}
	dev.signal(syscall.SIGINT)
	if code := dev.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("dev exit code %d after SIGINT", code)
	}
	out := dev.out.String()
	for _, want := range []string{"component=master", "component=worker", "component=cluster", "promoted to master", "task sent", "result", "cluster stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev log lacks %q", want)
		}
	}
}
