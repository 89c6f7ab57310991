package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/taskstore"
)

// fakeWorker registers a member with ID id that acks every task it is sent
// and does no work: the test answers for it. It returns the tasks received.
func fakeWorker(t *testing.T, c *cluster, master *node.Node, id string) (<-chan message.Task, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	received := make(chan message.Task, 100)
	if _, err := nc.Subscribe(message.TaskSubject(id), func(m *nats.Msg) {
		task, err := message.DecodeTask(m.Data)
		if err != nil {
			t.Errorf("fake worker: %v", err)
			return
		}
		received <- task
		_ = m.Respond(message.Ack{Accepted: true, Term: task.Term}.AppendJSON(nil))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.registerFake(t, id, "fake")
	testutil.Eventually(t, 5*time.Second, "the master sees the fake worker", func() bool {
		_, ok := master.Status().Members, false
		for _, m := range master.Status().Members {
			ok = ok || m.ID == id
		}
		return ok
	})
	return received, nc
}

func sameResult(a, b message.Result) bool {
	return string(a.AppendJSON(nil)) == string(b.AppendJSON(nil))
}

func receive(t *testing.T, tasks <-chan message.Task) message.Task {
	t.Helper()
	select {
	case task := <-tasks:
		return task
	case <-time.After(10 * time.Second):
		t.Fatal("the fake worker got no task")
	}
	return message.Task{}
}

// recorded waits for the task's record in etcd to be done and returns its result.
func recorded(t *testing.T, c *cluster, id string) message.Result {
	t.Helper()
	var res message.Result
	testutil.Eventually(t, 10*time.Second, "the task recorded done", func() bool {
		resp, err := c.cli.Get(t.Context(), keyspace.Task(c.cfg.Prefix, id))
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		rec, err := taskstore.Decode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
		if err != nil || rec.State != taskstore.Done {
			return false
		}
		res = *rec.Result
		return true
	})
	return res
}

// Open mode: anyone can publish on results. The master records a result only
// from the worker it sent the task to, for the term and attempt it was sent
// under, and only the work rule's answer for the task's number; the rest is
// refused and counted, and the real result is then recorded.
func TestResultsNotFromTheSendingAreRefused(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.TaskTimeout = time.Minute })
	c.start()
	master := c.waitConverged(15 * time.Second)
	const fake = "fake-00000000"
	tasks, nc := fakeWorker(t, c, master, fake)
	cl := dial(t, master)
	reply, err := cl.Submit(t.Context(), message.Submit{Number: 5})
	if err != nil {
		t.Fatal(err)
	}
	task := receive(t, tasks)
	if task.UUID != reply.UUID || task.Attempt != 1 || task.Term != reply.Term {
		t.Fatalf("task %+v for submission %+v", task, reply)
	}
	now := message.NewTimestamp(time.Now())
	real := message.Result{UUID: task.UUID, Executor: fake, Number: 5, Kind: message.KindTriple, Result: json.RawMessage("15"), Start: now, Finish: now, Term: task.Term, Attempt: task.Attempt}
	forged := map[string]func(*message.Result){
		"from a non-member":                 func(r *message.Result) { r.Executor = "stranger-00000000" },
		"from a member it was not sent to":  func(r *message.Result) { r.Executor = master.ID() },
		"of another term":                   func(r *message.Result) { r.Term++ },
		"of another attempt":                func(r *message.Result) { r.Attempt++ },
		"not the work rule's answer":        func(r *message.Result) { r.Result = json.RawMessage("16") },
		"of another number (issue 10 no 7)": func(r *message.Result) { r.Number, r.Result = 6, json.RawMessage("18") },
	}
	for _, forge := range forged {
		r := real
		forge(&r)
		if err := nc.Publish(message.SubjectResults, r.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "every forged result refused", func() bool {
		return master.Status().Dispatch.RefusedResults == int64(len(forged))
	})
	if err := nc.Publish(message.SubjectResults, real.AppendJSON(nil)); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, c, task.UUID); !sameResult(got, real) {
		t.Fatalf("recorded %+v, want %+v", got, real)
	}
	// The master counts the completion once its write has returned, just
	// after the record shows in etcd.
	testutil.Eventually(t, 5*time.Second, "the completion counted", func() bool { return master.Status().Dispatch.Completed == 1 })
	if s := master.Status().Dispatch; s.RefusedResults != int64(len(forged)) || s.Completed != 1 {
		t.Fatalf("refused %d results and completed %d, want %d and 1", s.RefusedResults, s.Completed, len(forged))
	}
}

// A result whose number differs from its task's, from the right sending, is
// refused before it is kept: the real result that follows is recorded, the
// task does not stay pending until the next master.
func TestResultOfAnotherNumberDoesNotBlockTheTask(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.TaskTimeout = time.Minute })
	c.start()
	master := c.waitConverged(15 * time.Second)
	const fake = "fake-00000000"
	tasks, nc := fakeWorker(t, c, master, fake)
	cl := dial(t, master)
	if _, err := cl.Submit(t.Context(), message.Submit{Number: 5}); err != nil {
		t.Fatal(err)
	}
	task := receive(t, tasks)
	now := message.NewTimestamp(time.Now())
	real := message.Result{UUID: task.UUID, Executor: fake, Number: 5, Kind: message.KindTriple, Result: json.RawMessage("15"), Start: now, Finish: now, Term: task.Term, Attempt: task.Attempt}
	wrong := real
	wrong.Number, wrong.Result = 6, json.RawMessage("18")
	for _, r := range []message.Result{wrong, real} {
		if err := nc.Publish(message.SubjectResults, r.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got := recorded(t, c, task.UUID); !sameResult(got, real) {
		t.Fatalf("recorded %+v, want %+v", got, real)
	}
}

// A task sent again to a worker that is working it, or has done it, is not
// run again; the result answers the latest sending (term and attempt), so
// the master that sent it last records it.
func TestWorkerAnswersTheLatestSending(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.WorkTime = node.WorkTime{Min: time.Second, Max: time.Second}
	})
	master, workers := c.startN(2)
	worker := workers[0]
	term := master.Status().Dispatch.Term
	res := watchResults(t, worker)
	send := func(attempt int64) {
		t.Helper()
		task := message.Task{UUID: "3f0c5e0e-2c4b-4b8e-9d7a-6a5b4c3d2e1f", Executor: worker.ID(), Number: 40, Term: term, Attempt: attempt}
		msg, err := res.conn.Request(message.TaskSubject(worker.ID()), task.AppendJSON(nil), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := message.DecodeAck(msg.Data); err != nil || !ack.Accepted {
			t.Fatalf("attempt %d: ack %+v, %v", attempt, ack, err)
		}
	}
	send(1)
	send(2) // while it runs
	testutil.Eventually(t, 10*time.Second, "the result", func() bool { return len(res.snapshot()) == 1 })
	if got := res.snapshot()[0]; got.Attempt != 2 || got.Term != term || string(got.Result) != string(message.TripleResult(40)) {
		t.Fatalf("result %+v, want attempt 2 of term %d", got, term)
	}
	send(3) // after it is done: published again
	testutil.Eventually(t, 10*time.Second, "the result published again", func() bool { return len(res.snapshot()) == 2 })
	if got := res.snapshot()[1]; got.Attempt != 3 {
		t.Fatalf("result published again %+v, want attempt 3", got)
	}
	if s := worker.Status().Worker; s.Completed != 1 || s.Redelivered != 2 {
		t.Fatalf("worker completed %d and took %d again, want 1 and 2", s.Completed, s.Redelivered)
	}
}

// A later attempt of a task whose attempt failed on a worker runs again
// there; the failed attempt sent again is answered with its error, not run.
func TestWorkerRunsALaterAttemptAfterAnError(t *testing.T) {
	var runs atomic.Int32
	c := newCluster(t, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.Handlers = meshpool.NewMux()
		cfg.Handlers.HandleFunc("flaky", func(_ context.Context, task *meshpool.Task) (json.RawMessage, error) {
			runs.Add(1)
			if task.Attempt < 2 {
				return nil, errors.New("first attempt fails")
			}
			return json.RawMessage(`"ok"`), nil
		})
	})
	master, workers := c.startN(2)
	worker := workers[0]
	term := master.Status().Dispatch.Term
	res := watchResults(t, worker)
	send := func(attempt int64) {
		t.Helper()
		task := message.Task{UUID: "4f0c5e0e-2c4b-4b8e-9d7a-6a5b4c3d2e1f", Executor: worker.ID(), Kind: "flaky", Payload: json.RawMessage("null"), Term: term, Attempt: attempt}
		if _, err := res.conn.Request(message.TaskSubject(worker.ID()), task.AppendJSON(nil), 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	testutil.Eventually(t, 10*time.Second, "attempt 1's error", func() bool { return len(res.snapshot()) == 1 })
	send(1) // again: its error published again, not run
	testutil.Eventually(t, 10*time.Second, "attempt 1's error again", func() bool { return len(res.snapshot()) == 2 })
	send(2)
	testutil.Eventually(t, 10*time.Second, "attempt 2's result", func() bool { return len(res.snapshot()) == 3 })
	got := res.snapshot()
	if got[1].Error == "" || got[1].Attempt != 1 || got[2].Attempt != 2 || string(got[2].Result) != `"ok"` || runs.Load() != 2 {
		t.Fatalf("results %+v after %d runs; want attempt 1's error twice, then attempt 2 run and done", got, runs.Load())
	}
}

// A handler that runs past --task-timeout has its context ended: the
// demo's returns, its attempt fails with a "timed out" error, and the task
// is retried, then recorded failed when its attempts are used up.
func TestTaskPastItsTimeoutEndsWithAnError(t *testing.T) {
	c := durable(t, func(cfg *node.Config) {
		cfg.TaskTimeout = time.Second
		cfg.WorkTime = node.WorkTime{Min: 3 * time.Second, Max: 3 * time.Second}
	})
	master, _ := c.startN(3)
	cl := dial(t, master)
	reply, err := cl.Submit(t.Context(), message.Submit{Number: 7, Options: message.Options{MaxAttempts: 2, Backoff: message.Duration(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := cl.Wait(ctx, reply.UUID)
	if err != nil || res.Result != nil || !strings.HasPrefix(res.Error, "timed out after 1s") {
		t.Fatalf("result %+v, %v; want the error timed out after 1s", res, err)
	}
	testutil.Eventually(t, 10*time.Second, "the task retried once, then recorded failed", func() bool {
		d := master.Status().Dispatch
		return d.ErrorResults == 1 && d.Retried == 1
	})
}

// A handler that ignores its context and runs past the timeout and the
// slack: the task goes to another worker, and the first worker's result,
// though late, is recorded (real work, and it comes first); the master
// warns and counts it.
func TestResultAfterTaskTimeoutIsRecordedAndCounted(t *testing.T) {
	mux := meshpool.NewMux()
	mux.HandleFunc("stubborn", func(ctx context.Context, task *meshpool.Task) (json.RawMessage, error) {
		time.Sleep(3 * time.Second) // ignores ctx
		return json.RawMessage(`"done"`), nil
	})
	c := durable(t, func(cfg *node.Config) {
		cfg.TaskTimeout = time.Second // the master gives up after 2 s
		cfg.Handlers = mux
	})
	master, _ := c.startN(3)
	cl := dial(t, master)
	reply, err := cl.Submit(t.Context(), message.Submit{Kind: "stubborn", Payload: json.RawMessage("null")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if res, err := cl.Wait(ctx, reply.UUID); err != nil || string(res.Result) != `"done"` {
		t.Fatalf("result %+v, %v", res, err)
	}
	testutil.Eventually(t, 5*time.Second, "the late result counted", func() bool { return master.Status().Dispatch.LateResults >= 1 })
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
