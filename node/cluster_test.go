package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"encoding/json"
	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/audit"
	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/registry"
)

// The test cluster: an embedded etcd and nodes started against it, and
// the helpers the cluster tests share.

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// cluster is an embedded etcd and the nodes started against it.
type cluster struct {
	t     *testing.T
	etcd  *etcdtest.Server
	cli   *clientv3.Client
	cfg   node.Config
	mu    sync.Mutex
	nodes map[string]*running
	next  int
}

type running struct {
	n   *node.Node
	run *testutil.Running // n.Run in the background
}

func newCluster(t *testing.T, tune func(*node.Config)) *cluster {
	t.Helper()
	return newClusterOn(t, embedetcd.Config{}, tune)
}

// newClusterOn is newCluster with an etcd started from ecfg.
func newClusterOn(t *testing.T, ecfg embedetcd.Config, tune func(*node.Config)) *cluster {
	t.Helper()
	etcd := etcdtest.Start(t, ecfg)
	cli := etcdtest.Client(t, etcd.Endpoint())
	cfg := node.DefaultConfig()
	cfg.Etcd = []string{etcd.Endpoint()}
	cfg.Prefix = "/test"
	cfg.ClientPort, cfg.ClusterPort, cfg.HTTPPort = -1, -1, -1
	cfg.TTL = 2 * time.Second
	cfg.TaskInterval = 50 * time.Millisecond
	cfg.WorkTime = node.WorkTime{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	cfg.Slots = 64 // the tests here are about placement and faults, not capacity (see capacity_test.go)
	cfg.ShutdownGrace = 5 * time.Second
	cfg.Logger = testLogger(t)
	if tune != nil {
		tune(&cfg)
	}
	return &cluster{t: t, etcd: etcd, cli: cli, cfg: cfg, nodes: map[string]*running{}, next: 2}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MESHPOOL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start runs one more node on the next 127.0.0.x address.
func (c *cluster) start() *node.Node {
	c.t.Helper()
	c.mu.Lock()
	cfg := c.cfg
	cfg.Advertise = fmt.Sprintf("127.0.0.%d", c.next)
	cfg.Name = fmt.Sprintf("n%d", c.next)
	c.next++
	c.mu.Unlock()
	n, err := node.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	r := &running{n: n, run: testutil.Go(c.t, n.Run)}
	c.mu.Lock()
	c.nodes[n.ID()] = r
	c.mu.Unlock()
	c.t.Cleanup(func() { c.stop(n.ID()) })
	return n
}

// startN starts n nodes, waits for them to converge and returns the master
// and the others.
func (c *cluster) startN(n int) (master *node.Node, workers []*node.Node) {
	c.t.Helper()
	for range n {
		c.start()
	}
	master = c.waitConverged(15 * time.Second)
	for _, nd := range c.running() {
		if nd != master {
			workers = append(workers, nd)
		}
	}
	return master, workers
}

// stop shuts a node down cleanly and waits for it.
func (c *cluster) stop(id string) {
	c.mu.Lock()
	r := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if r == nil {
		return
	}
	if err := r.run.StopWithin(30 * time.Second); err != nil {
		c.t.Errorf("node %s: %v", id, err)
	}
}

func (c *cluster) running() []*node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node.Node
	for _, r := range c.nodes {
		out = append(out, r.n)
	}
	slices.SortFunc(out, func(a, b *node.Node) int { return cmp(a.ID(), b.ID()) })
	return out
}

func cmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// converged reports whether every running node sees all of them, is routed
// to all others, and all agree on one master that says it is master.
func (c *cluster) converged() (master *node.Node, ok bool) {
	nodes := c.running()
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID())
	}
	var leader election.Leader
	for i, n := range nodes {
		s := n.Status()
		var members []string
		for _, m := range s.Members {
			members = append(members, m.ID)
		}
		others := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == n.ID() })
		if !slices.Equal(members, ids) || !slices.Equal(s.Routes, others) || s.Master.ID == "" {
			return nil, false
		}
		if i == 0 {
			leader = s.Master
		} else if s.Master != leader {
			return nil, false
		}
		if s.IsMaster {
			if master != nil || n.ID() != leader.ID {
				return nil, false
			}
			master = n
		}
	}
	return master, master != nil
}

func (c *cluster) waitConverged(timeout time.Duration) *node.Node {
	c.t.Helper()
	var m *node.Node
	testutil.Eventually(c.t, timeout, "cluster converged", func() bool {
		var ok bool
		m, ok = c.converged()
		return ok
	})
	return m
}

// durable returns a cluster tuned for submitted work: no demo generator.
func durable(t *testing.T, tune func(*node.Config)) *cluster {
	return newCluster(t, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.TaskTimeout = 3 * time.Second
		cfg.ResultRetention = time.Minute
		if tune != nil {
			tune(cfg)
		}
	})
}

func clientURL(t *testing.T, n *node.Node) string {
	t.Helper()
	for _, m := range n.Status().Members {
		if m.ID == n.ID() {
			return m.ClientURL
		}
	}
	t.Fatalf("%s does not list itself", n.ID())
	return ""
}

func dial(t *testing.T, n *node.Node) *client.Client {
	t.Helper()
	c, err := client.Dial(clientURL(t, n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Follow(); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitResult waits, boundedly, for the result of an accepted task.
func waitResult(t *testing.T, cl *client.Client, id string) (message.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return cl.Wait(ctx, id)
}

func startAudit(t *testing.T, c *cluster) *audit.Audit {
	t.Helper()
	a, err := audit.Start(t.Context(), c.cli, c.cfg.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func checkInvariant(t *testing.T, a *audit.Audit, accepted []string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "every accepted task recorded", func() bool { return a.Recorded(accepted) == len(accepted) })
	rep, err := a.Check(accepted)
	if err != nil || !rep.OK() {
		t.Fatalf("invariant broken: %s; %v; stale: %v", rep, err, rep.Stale)
	}
	t.Logf("invariant holds: %s", rep)
}

// registerFake registers a member record of id on 127.0.0.9, under a lease
// of its own, as a node would: a member no node can route to.
func (c *cluster) registerFake(t *testing.T, id, name string) {
	t.Helper()
	rec := registry.Record{ID: id, Name: name, IP: "127.0.0.9", ClientURL: "nats://127.0.0.9:1",
		ClusterURL: "nats-route://127.0.0.9:1", HTTPURL: "http://127.0.0.9:1", Version: "test", Started: time.Now()}
	val, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := c.cli.Grant(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Put(t.Context(), keyspace.Node(c.cfg.Prefix, id), string(val), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
}
