package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

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
	n    *node.Node
	stop context.CancelFunc
	done chan struct{}
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
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{n: n, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := n.Run(ctx); err != nil {
			c.t.Errorf("node %s: %v", n.ID(), err)
		}
	}()
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
	r.stop()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("node %s did not stop within 30s", id)
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

// results follows the results subject through one node's client port.
type results struct {
	mu   sync.Mutex
	all  []message.Result
	bad  []string
	conn *nats.Conn
}

func watchResults(t *testing.T, n *node.Node) *results {
	t.Helper()
	url := clientURL(t, n)
	conn, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("cannot connect to %s: %v", url, err)
	}
	t.Cleanup(conn.Close)
	r := &results{conn: conn}
	_, err = conn.Subscribe(message.SubjectResults, func(msg *nats.Msg) {
		res, err := message.DecodeResult(msg.Data)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err.Error())
			return
		}
		r.all = append(r.all, res)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *results) snapshot() []message.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// since returns the results whose predicate holds.
func (r *results) count(pred func(message.Result) bool) int {
	n := 0
	for _, res := range r.snapshot() {
		if pred(res) {
			n++
		}
	}
	return n
}

func TestThreeNodesFormAClusterAndWork(t *testing.T) {
	c := newCluster(t, nil)
	master, _ := c.startN(3)
	res := watchResults(t, master)

	// Tasks only reach the worker they name: watch tasks.> from outside
	// and check the subject against the executor.
	var mu sync.Mutex
	misrouted := 0
	tasksSeen := 0
	sub, err := res.conn.Subscribe("tasks.>", func(msg *nats.Msg) {
		task, err := message.DecodeTask(msg.Data)
		mu.Lock()
		defer mu.Unlock()
		tasksSeen++
		if err != nil || msg.Subject != message.TaskSubject(task.Executor) || task.Executor == master.ID() {
			misrouted++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// Both workers get work. (A request sent while routes are still forming
	// can be lost; its worker then counts as busy until the 2s ack timeout,
	// so the first second may all go to the other worker.)
	testutil.Eventually(t, 15*time.Second, "20 results from both workers", func() bool {
		workers := map[string]bool{}
		for _, r := range res.snapshot() {
			workers[r.Executor] = true
		}
		return len(res.snapshot()) >= 20 && len(workers) == 2
	})
	term := master.Status().Dispatch.Term
	byWorker := map[string]int{}
	for _, r := range res.snapshot() {
		if r.Result != r.Number*3 {
			t.Errorf("result %d for number %d, want %d", r.Result, r.Number, r.Number*3)
		}
		if r.Number < 30 || r.Number > 60 {
			t.Errorf("demo number %d outside 30..60", r.Number)
		}
		if r.Executor == master.ID() {
			t.Errorf("the master %s worked task %s itself", master.ID(), r.UUID)
		}
		if r.Term != term {
			t.Errorf("result term %d, master term %d", r.Term, term)
		}
		if r.Finish.Before(r.Start.Time) {
			t.Errorf("result %s finished before it started", r.UUID)
		}
		byWorker[r.Executor]++
	}
	if len(byWorker) != 2 {
		t.Errorf("results came from %d workers, want both: %v", len(byWorker), byWorker)
	}
	// Each worker's own count of finished tasks matches the results that name it.
	testutil.Eventually(t, 5*time.Second, "worker counters match results", func() bool {
		for _, n := range c.running() {
			if n == master {
				continue
			}
			if got := n.Status().Worker.Completed; got < int64(byWorker[n.ID()]) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if tasksSeen == 0 || misrouted != 0 {
		t.Errorf("saw %d tasks, %d misrouted", tasksSeen, misrouted)
	}
	if len(res.bad) != 0 {
		t.Errorf("malformed results: %v", res.bad)
	}
}

func TestCleanLeaveIsSeenAtOnce(t *testing.T) {
	// A long TTL: only the lease revocation at shutdown can explain a fast leave.
	c := newCluster(t, func(cfg *node.Config) { cfg.TTL = 30 * time.Second })
	master, workers := c.startN(3)
	leaver := workers[0]
	start := time.Now()
	c.stop(leaver.ID())
	c.waitConverged(3 * time.Second)
	t.Logf("clean leave seen by every peer in %s (stop included)", time.Since(start).Round(time.Millisecond))
	for _, n := range c.running() {
		for _, m := range n.Status().Members {
			if m.ID == leaver.ID() {
				t.Fatalf("%s still lists %s", n.ID(), leaver.ID())
			}
		}
	}
	// The master keeps dispatching, now only to the one worker left.
	res := watchResults(t, master)
	testutil.Eventually(t, 5*time.Second, "results after the leave", func() bool { return len(res.snapshot()) >= 5 })
	for _, r := range res.snapshot() {
		if r.Executor == leaver.ID() {
			t.Fatalf("a task went to %s after it left", leaver.ID())
		}
	}
}

func TestCleanMasterExitIsReplacedAndTheNewMasterDispatches(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) { cfg.TTL = 30 * time.Second })
	old, _ := c.startN(3)
	oldTerm := old.Status().Dispatch.Term
	start := time.Now()
	c.stop(old.ID())
	newMaster := c.waitConverged(5 * time.Second)
	t.Logf("clean master exit to new master in %s (stop included)", time.Since(start).Round(time.Millisecond))
	newTerm := newMaster.Status().Dispatch.Term
	if newTerm <= oldTerm {
		t.Fatalf("new term %d is not above the old term %d", newTerm, oldTerm)
	}
	res := watchResults(t, newMaster)
	testutil.Eventually(t, 5*time.Second, "a result under the new term", func() bool {
		return res.count(func(r message.Result) bool { return r.Term == newTerm }) > 0
	})
}

func TestDemotedMasterWorksAsWorker(t *testing.T) {
	c := newCluster(t, nil)
	old, _ := c.startN(3)
	oldTerm := old.Status().Dispatch.Term

	// Demote without stopping: delete the master's election key, as an
	// operator (or a lost session) would. The node campaigns again at the
	// back of the queue.
	ctx := t.Context()
	resp, err := c.cli.Get(ctx, election.Prefix("/test")+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != old.ID() {
		t.Fatalf("cannot find the master's election key: %v %v", err, resp)
	}
	if _, err := c.cli.Delete(ctx, string(resp.Kvs[0].Key)); err != nil {
		t.Fatal(err)
	}
	// The deletion takes a moment to reach every node: wait for a cluster
	// that has converged on another master. The old master campaigns again
	// with a newer key than the two others, so it cannot win back at once.
	testutil.Eventually(t, 10*time.Second, "converged on a new master", func() bool {
		m, ok := c.converged()
		return ok && m != old
	})
	if s := old.Status(); s.IsMaster || s.Master.Term <= oldTerm {
		t.Fatalf("old master status after demotion: %+v", s)
	}
	before := old.Status().Worker.Completed
	testutil.Eventually(t, 10*time.Second, "the demoted master completes tasks as a worker", func() bool {
		return old.Status().Worker.Completed > before
	})
}

func TestLateJoinerIsRoutedAndGetsTasks(t *testing.T) {
	c := newCluster(t, nil)
	c.start()
	c.start()
	master := c.waitConverged(15 * time.Second)
	res := watchResults(t, master)
	late := c.start()
	start := time.Now()
	c.waitConverged(10 * time.Second)
	t.Logf("late joiner routed with every peer in %s", time.Since(start).Round(time.Millisecond))
	testutil.Eventually(t, 10*time.Second, "a result from the late joiner", func() bool {
		return res.count(func(r message.Result) bool { return r.Executor == late.ID() }) > 0
	})
}

func TestStaleTermIsRefused(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) { cfg.TaskInterval = 0 })
	c.start()
	c.start()
	master := c.waitConverged(15 * time.Second)
	var worker *node.Node
	for _, n := range c.running() {
		if n != master {
			worker = n
		}
	}
	term := master.Status().Dispatch.Term
	// Talk to the worker's own server: there its subscription to
	// tasks.<id> is local, not interest still travelling over a route.
	res := watchResults(t, worker)

	tests := []struct {
		name     string
		term     int64
		executor string
		accepted bool
	}{
		{"older term", term - 1, worker.ID(), false},
		{"another executor", term, master.ID(), false},
		{"current term", term, worker.ID(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := message.Task{UUID: "3f0c5e0e-2c4b-4b8e-9d7a-6a5b4c3d2e1f", Executor: tt.executor, Number: 40, Term: tt.term}
			body, _ := json.Marshal(task)
			msg, err := res.conn.Request(message.TaskSubject(worker.ID()), body, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := message.DecodeAck(msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Accepted != tt.accepted {
				t.Fatalf("ack %+v, want accepted=%v", ack, tt.accepted)
			}
		})
	}
	// Malformed input is refused too and the worker stays up.
	msg, err := res.conn.Request(message.TaskSubject(worker.ID()), []byte(`{"uuid":`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := message.DecodeAck(msg.Data); err != nil || ack.Accepted {
		t.Fatalf("malformed task: ack %+v, %v", ack, err)
	}
	if got := worker.Status().Worker.Refused; got != 3 {
		t.Fatalf("worker counted %d refusals, want 3", got)
	}
	testutil.Eventually(t, 5*time.Second, "the accepted task's result", func() bool { return len(res.snapshot()) == 1 })
}
