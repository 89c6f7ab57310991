package node_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

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
		if string(r.Result) != string(message.TripleResult(r.Number)) {
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
	resp, err := c.cli.Get(ctx, keyspace.Election("/test")+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
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
