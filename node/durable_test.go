package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/taskstore"
)

func TestSubmitIsRecordedAnsweredAndNotRunTwice(t *testing.T) {
	c := durable(t, nil)
	master, workers := c.startN(3)
	worker := workers[0]
	a := startAudit(t, c)
	cl := dial(t, worker) // any node will do: the master answers through the mesh
	ctx := t.Context()

	reply, err := cl.Submit(ctx, message.Submit{Number: 42})
	if err != nil || !reply.Accepted || reply.Duplicate || reply.Term != master.Status().Dispatch.Term {
		t.Fatalf("submit: %+v, %v", reply, err)
	}
	// Accepted means recorded: the record exists in etcd now.
	resp, err := c.cli.Get(ctx, keyspace.Task(c.cfg.Prefix, reply.UUID))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("no record for an accepted task: %v %v", err, resp)
	}
	res, err := waitResult(t, cl, reply.UUID)
	if err != nil || string(res.Result) != "126" || res.Executor == master.ID() {
		t.Fatalf("result %+v, %v", res, err)
	}
	checkInvariant(t, a, []string{reply.UUID})

	// The same uuid again: not run again, answered with the result.
	testutil.Eventually(t, 5*time.Second, "the duplicate answered with its result", func() bool {
		again, err := cl.Submit(ctx, message.Submit{UUID: reply.UUID, Number: 42})
		return err == nil && again.Duplicate && again.State == message.StateDone && again.Result != nil && string(again.Result.Result) == "126"
	})
	before := 0
	for _, n := range c.running() {
		before += int(n.Status().Worker.Completed)
	}
	if before != 1 {
		t.Fatalf("workers completed %d tasks, want 1", before)
	}
	if got := master.Status().Dispatch.Duplicates; got < 1 {
		t.Fatalf("duplicate submissions counted %d", got)
	}
}

func TestBadSubmissionsAreRefusedAndCounted(t *testing.T) {
	c := durable(t, nil)
	c.start()
	c.start()
	master := c.waitConverged(15 * time.Second)
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A payload over --max-payload (256 KiB by default), under NATS's 2 MiB.
	oversized := `{"kind":"k","payload":"` + strings.Repeat("x", 300<<10) + `"}`
	for _, body := range []string{`{"number":"42"}`, `not json`, `{"uuid":"nope","number":1}`, `{"number":1152921504606846977}`, oversized} {
		msg, err := nc.Request(message.SubjectSubmit, []byte(body), 2*time.Second)
		if err != nil {
			t.Fatalf("%.80s: %v", body, err)
		}
		var r message.SubmitReply
		if err := json.Unmarshal(msg.Data, &r); err != nil || r.Accepted || r.Error == "" {
			t.Fatalf("%.80s: answer %s", body, msg.Data)
		}
		if body == oversized && !strings.Contains(r.Error, "more than --max-payload 262144") {
			t.Fatalf("oversized payload: answer %s, want it to name --max-payload", msg.Data)
		}
	}
	// Malformed results on the subject are refused and counted; the master goes on.
	if err := nc.Publish(message.SubjectResults, []byte(`{"uuid":1}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "bad result counted", func() bool { return master.Status().Dispatch.BadResults == 1 })
	if got := master.Status().Dispatch.Refused; got != 5 {
		t.Fatalf("refused submissions %d, want 5", got)
	}
	cl := dial(t, master)
	if _, err := cl.Submit(t.Context(), message.Submit{Number: 1}); err != nil {
		t.Fatalf("the master stopped working after bad input: %v", err)
	}
}

func TestNewMasterResumesTasksInFlight(t *testing.T) {
	c := durable(t, func(cfg *node.Config) {
		cfg.WorkTime = node.WorkTime{Min: 500 * time.Millisecond, Max: 1500 * time.Millisecond}
		cfg.TTL = 10 * time.Second
	})
	master, workers := c.startN(3)
	other := workers[0]
	a := startAudit(t, c)
	cl := dial(t, other)
	rep, err := cl.Load(t.Context(), client.LoadSpec{N: 40, Concurrency: 8})
	if err != nil || rep.Accepted != 40 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	// The master leaves while most tasks are in flight; the next one loads
	// them from etcd and gets every result recorded, once.
	c.stop(master.ID())
	checkInvariant(t, a, rep.AcceptedUUIDs)
}

// workerWithTasks waits for a worker other than master with tasks in flight.
func workerWithTasks(t *testing.T, c *cluster, master *node.Node) *node.Node {
	t.Helper()
	var w *node.Node
	testutil.Eventually(t, 5*time.Second, "a worker with tasks", func() bool {
		for _, n := range c.running() {
			if n != master && n.Status().Worker.InFlight > 0 {
				w = n
				return true
			}
		}
		return false
	})
	return w
}

func TestAbandonedTasksGoToAnotherWorker(t *testing.T) {
	c := durable(t, func(cfg *node.Config) {
		cfg.WorkTime = node.WorkTime{Min: 2 * time.Second, Max: 2 * time.Second}
		cfg.ShutdownGrace = 0 // a stopping worker abandons its tasks
	})
	master, _ := c.startN(3)
	a := startAudit(t, c)
	cl := dial(t, master)
	rep, err := cl.Load(t.Context(), client.LoadSpec{N: 10, Concurrency: 10})
	if err != nil || rep.Accepted != 10 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	leaver := workerWithTasks(t, c, master)
	c.stop(leaver.ID())
	checkInvariant(t, a, rep.AcceptedUUIDs)
	if got := master.Status().Dispatch.Redispatched; got == 0 {
		t.Fatal("no task was given to another worker")
	}
}

// A worker that acks and never answers: its task goes to another worker
// after the task timeout.
func TestSilentWorkerTimesOut(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.TaskTimeout = time.Second })
	c.start()
	master := c.waitConverged(15 * time.Second)

	// Register a member that swallows tasks.
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const silent = "silent-00000000"
	swallowed := make(chan string, 100)
	if _, err := nc.Subscribe(message.TaskSubject(silent), func(m *nats.Msg) {
		var task message.Task
		_ = json.Unmarshal(m.Data, &task)
		swallowed <- task.UUID
		body, _ := json.Marshal(message.Ack{Accepted: true, Term: task.Term})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	c.registerFake(t, silent, "silent")
	testutil.Eventually(t, 5*time.Second, "the master sees the silent worker", func() bool { return len(master.Status().Members) == 2 })

	a := startAudit(t, c)
	cl := dial(t, master)
	reply, err := cl.Submit(t.Context(), message.Submit{Number: 5})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-swallowed:
		if id != reply.UUID {
			t.Fatalf("swallowed %s, want %s", id, reply.UUID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the only worker never got the task")
	}
	// Now a real worker joins: after the timeout the task goes to it.
	c.start()
	checkInvariant(t, a, []string{reply.UUID})
	if _, err := waitResult(t, cl, reply.UUID); err != nil {
		t.Fatal(err)
	}
}

// One corrupt task record must not stop the master: it resumes the other
// pending tasks and takes new work.
func TestCorruptTaskRecordIsLeftOutNotFatal(t *testing.T) {
	c := durable(t, nil)
	ctx := t.Context()
	const corrupt = "11111111-2222-4333-8444-555555555555"
	if _, err := c.cli.Put(ctx, keyspace.Task(c.cfg.Prefix, corrupt), "not json"); err != nil {
		t.Fatal(err)
	}
	// A pending task an earlier master recorded, placed on a worker that is gone.
	const pendingID = "66666666-7777-4888-9999-aaaaaaaaaaaa"
	rec := taskstore.Record{UUID: pendingID, Number: 7, Executor: "gone-00000000", Term: 1,
		State: taskstore.Pending, Submitted: time.Now().UTC(), Attempts: 1}
	val, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Put(ctx, keyspace.Task(c.cfg.Prefix, pendingID), string(val)); err != nil {
		t.Fatal(err)
	}
	a := startAudit(t, c)
	master, _ := c.startN(3)
	checkInvariant(t, a, []string{pendingID})
	cl := dial(t, master)
	reply, err := cl.Submit(ctx, message.Submit{Number: 8})
	if err != nil {
		t.Fatalf("submit after a corrupt record: %v", err)
	}
	if res, err := waitResult(t, cl, reply.UUID); err != nil || string(res.Result) != "24" {
		t.Fatalf("result %+v, %v", res, err)
	}
}

// Durability none: accepted at once, never written to etcd, still re-placed
// when its worker leaves, and answered as a duplicate after its result.
func TestEphemeralTasksAreNotRecordedButStillRetried(t *testing.T) {
	c := durable(t, func(cfg *node.Config) {
		cfg.WorkTime = node.WorkTime{Min: time.Second, Max: time.Second}
		cfg.ShutdownGrace = 0 // a stopping worker abandons its tasks
	})
	master, _ := c.startN(3)
	cl := dial(t, master)
	ctx := t.Context()
	rep, err := cl.Load(ctx, client.LoadSpec{N: 10, Concurrency: 10, Durability: message.DurabilityNone})
	if err != nil || rep.Accepted != 10 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	leaver := workerWithTasks(t, c, master)
	c.stop(leaver.ID())
	numbers := map[string]int64{}
	for _, id := range rep.AcceptedUUIDs {
		res, err := waitResult(t, cl, id)
		if err != nil || res.Executor == leaver.ID() {
			t.Fatalf("task %s: result %+v, %v", id, res, err)
		}
		numbers[id] = res.Number
	}
	if got := master.Status().Dispatch.Redispatched; got == 0 {
		t.Fatal("no task was given to another worker")
	}
	resp, err := c.cli.Get(ctx, keyspace.Tasks(c.cfg.Prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("ephemeral tasks left %d records in etcd (%v)", resp.Count, err)
	}
	first := rep.AcceptedUUIDs[0]
	// The client may see a result on the subject before the master has
	// recorded it: ask until it has.
	var again message.SubmitReply
	testutil.Eventually(t, 5*time.Second, "the master has recorded the first task", func() bool {
		again, err = cl.Submit(ctx, message.Submit{UUID: first, Number: numbers[first], Durability: message.DurabilityNone})
		return err != nil || again.State != message.StatePending
	})
	if err != nil || !again.Duplicate || again.State != message.StateDone || again.Result == nil {
		t.Fatalf("resubmission: %+v, %v", again, err)
	}
}

// The master remembers few done tasks in memory here; a re-submission of
// one it forgot is answered from etcd, not run again.
func TestForgottenDoneTaskIsLookedUpNotRunAgain(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.DoneIndexSize = 2 })
	master, _ := c.startN(3)
	cl := dial(t, master)
	ctx := t.Context()
	rep, err := cl.Load(ctx, client.LoadSpec{N: 6, Concurrency: 1, Wait: true})
	if err != nil || rep.Results != 6 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	first := rep.AcceptedUUIDs[0]
	want, err := waitResult(t, cl, first)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.Submit(ctx, message.Submit{UUID: first, Number: want.Number})
	if err != nil || !again.Duplicate || again.State != message.StateDone || again.Result == nil || string(again.Result.Result) != string(want.Result) {
		t.Fatalf("re-submission of a forgotten task: %+v, %v", again, err)
	}
	completed := 0
	for _, n := range c.running() {
		completed += int(n.Status().Worker.Completed)
	}
	if completed != 6 {
		t.Fatalf("workers completed %d tasks, want 6: a forgotten task ran again", completed)
	}
}
