package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// blocking is a handler that reports each start, then returns when
// released or when its context ends, reporting its context's cause.
type blocking struct {
	started chan string   // the uuid of each run
	ended   chan error    // context.Cause at the end; nil when released
	release chan struct{} // a send ends one run with a result
}

func newBlocking() *blocking {
	return &blocking{started: make(chan string, 16), ended: make(chan error, 16), release: make(chan struct{})}
}

func (b *blocking) Work(ctx context.Context, t *meshpool.Task) (json.RawMessage, error) {
	b.started <- t.UUID
	select {
	case <-b.release:
		b.ended <- nil
		return json.RawMessage(`"released"`), nil
	case <-ctx.Done():
		b.ended <- context.Cause(ctx)
		return nil, ctx.Err()
	}
}

// newHandlerRig is a rig whose worker runs mux's kinds in slots, with a
// worker timeout of a minute, and the term of its current master.
func newHandlerRig(t *testing.T, slots int, mux *meshpool.Mux) (*termRig, int64) {
	t.Helper()
	r := newTermRigWith(t, workerConfig{handlers: mux, slots: slots, timeout: time.Minute, maxResult: 1 << 20})
	term, _ := r.campaign()
	return r, term
}

// task is a task of kind for the rig's worker, of term.
func (r *termRig) task(kind string, term int64) message.Task {
	return message.Task{UUID: uuid.NewString(), Executor: r.w.id, Kind: kind, Payload: json.RawMessage(`{}`), Term: term, Attempt: 1}
}

// request sends body on subject and returns the ack.
func (r *termRig) request(subject string, body []byte) message.Ack {
	r.t.Helper()
	msg, err := r.conn.Request(subject, body, 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	ack, err := message.DecodeAck(msg.Data)
	if err != nil {
		r.t.Fatal(err)
	}
	return ack
}

// sendTask sends task to the rig's worker and fails unless it is accepted.
func (r *termRig) sendTask(task message.Task) {
	r.t.Helper()
	if ack := r.request(message.TaskSubject(r.w.id), task.AppendJSON(nil)); !ack.Accepted {
		r.t.Fatalf("task %s: ack %+v, want accepted", task.UUID, ack)
	}
}

// cancel sends the master's cancel of id, of term, for executor.
func (r *termRig) cancel(id, executor string, term int64) message.Ack {
	r.t.Helper()
	body, err := json.Marshal(message.Cancel{UUID: id, Executor: executor, Term: term, Attempt: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	return r.request(message.CancelSubject(r.w.id), body)
}

// noResult fails if a result for id is published within a moment.
func (r *termRig) noResult(id string) {
	r.t.Helper()
	testutil.Consistently(r.t, 300*time.Millisecond, "no result for "+id, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.results[id]
		return !ok
	})
}

// releaseOne ends one run of b with a result, or fails when none runs.
func (b *blocking) releaseOne(t *testing.T) {
	t.Helper()
	select {
	case b.release <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no run of the handler to release")
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// A task's own timeout, shorter than the worker's, ends its handler and
// bounds its wait for a slot.
func TestWorkerTaskTimeout(t *testing.T) {
	b := newBlocking()
	mux := meshpool.NewMux()
	mux.Handle("block", b)
	r, term := newHandlerRig(t, 1, mux)

	task := r.task("block", term)
	task.TimeoutMS = 200
	r.sendTask(task)
	receive(t, b.started, "start")
	if cause := receive(t, b.ended, "end"); !errors.Is(cause, context.DeadlineExceeded) {
		t.Fatalf("the handler's context ended with %v, want its deadline", cause)
	}
	res := r.waitResult(task.UUID)
	if res.Error != "timed out after 200ms: context deadline exceeded" || res.Permanent {
		t.Fatalf("result %+v, want timed out after the task's 200ms", res)
	}
	if took := res.Finish.Sub(res.Start.Time); took > 5*time.Second {
		t.Fatalf("the handler ran %s, past the task's timeout", took)
	}

	// One task holds the slot; another, of a short timeout, is not started
	// before its deadline: the worker forgets it then.
	holder := r.task("block", term)
	r.sendTask(holder)
	receive(t, b.started, "the holder's start")
	short := r.task("block", term)
	short.TimeoutMS = 200
	r.sendTask(short)
	testutil.Eventually(t, 5*time.Second, "the waiting task dropped at its deadline", func() bool { return r.w.inFlight.Load() == 1 })
	b.releaseOne(t)
	r.waitResult(holder.UUID)
	r.noResult(short.UUID)
}

// A handler's permanent error makes a permanent result; any other error,
// or a panic, does not.
func TestWorkerPermanentResult(t *testing.T) {
	mux := meshpool.NewMux()
	mux.HandleFunc("permanent", func(context.Context, *meshpool.Task) (json.RawMessage, error) {
		return nil, meshpool.Permanent(errors.New("no such image"))
	})
	mux.HandleFunc("plain", func(context.Context, *meshpool.Task) (json.RawMessage, error) {
		return nil, errors.New("try again")
	})
	mux.HandleFunc("panic", func(context.Context, *meshpool.Task) (json.RawMessage, error) {
		panic(meshpool.Permanent(errors.New("boom")))
	})
	r, term := newHandlerRig(t, 4, mux)
	for _, tt := range []struct {
		kind      string
		err       string
		permanent bool
	}{
		{"permanent", "no such image", true},
		{"plain", "try again", false},
		{"panic", "handler panicked: boom", false},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			task := r.task(tt.kind, term)
			r.sendTask(task)
			if res := r.waitResult(task.UUID); res.Error != tt.err || res.Permanent != tt.permanent {
				t.Fatalf("result %+v, want error %q, permanent %v", res, tt.err, tt.permanent)
			}
		})
	}
}

// A cancelled task's handler context ends with the master's cause; it
// publishes no result, and its slot is free again.
func TestWorkerCancelRunning(t *testing.T) {
	b := newBlocking()
	mux := meshpool.NewMux()
	mux.Handle("block", b)
	r, term := newHandlerRig(t, 1, mux)

	task := r.task("block", term)
	r.sendTask(task)
	receive(t, b.started, "start")
	if ack := r.cancel(task.UUID, r.w.id, term); !ack.Accepted || ack.Reason != "" {
		t.Fatalf("cancel: ack %+v, want accepted", ack)
	}
	if cause := receive(t, b.ended, "end"); !errors.Is(cause, errCancelled) {
		t.Fatalf("the handler's context ended with %v, want %v", cause, errCancelled)
	}
	r.noResult(task.UUID)
	testutil.Eventually(t, 5*time.Second, "the slot free", func() bool { return r.w.busy.Load() == 0 && r.w.inFlight.Load() == 0 })
	if got := r.w.cancelled.Load(); got != 1 {
		t.Fatalf("cancelled %d, want 1", got)
	}
	r.w.mu.Lock()
	_, _, recent := r.w.recent.get(task.UUID)
	r.w.mu.Unlock()
	if recent {
		t.Fatal("the cancelled task is remembered as done")
	}

	next := r.task("block", term)
	r.sendTask(next)
	receive(t, b.started, "the next task's start")
	b.releaseOne(t)
	if res := r.waitResult(next.UUID); string(res.Result) != `"released"` {
		t.Fatalf("the next task's result %+v", res)
	}
}

// A task cancelled while it waits for a slot never runs.
func TestWorkerCancelWaiting(t *testing.T) {
	b := newBlocking()
	mux := meshpool.NewMux()
	mux.Handle("block", b)
	r, term := newHandlerRig(t, 1, mux)

	holder, waiting := r.task("block", term), r.task("block", term)
	r.sendTask(holder)
	receive(t, b.started, "the holder's start")
	r.sendTask(waiting)
	if ack := r.cancel(waiting.UUID, r.w.id, term); !ack.Accepted || ack.Reason != "" {
		t.Fatalf("cancel: ack %+v, want accepted", ack)
	}
	testutil.Eventually(t, 5*time.Second, "the waiting task dropped", func() bool { return r.w.inFlight.Load() == 1 })
	b.releaseOne(t)
	r.waitResult(holder.UUID)
	r.noResult(waiting.UUID)
	select {
	case id := <-b.started:
		t.Fatalf("task %s started; the holder was %s, the cancelled one %s", id, holder.UUID, waiting.UUID)
	default:
	}
	if got := r.w.cancelled.Load(); got != 1 {
		t.Fatalf("cancelled %d, want 1", got)
	}
}

// A cancel is an order from the master: one for another worker, of a
// stale or forged term, or malformed, is refused, and the task runs on.
// A valid one for a task not running here is accepted, and the task, if
// it arrives after its cancel, is refused.
func TestWorkerCancelChecks(t *testing.T) {
	b := newBlocking()
	mux := meshpool.NewMux()
	mux.Handle("block", b)
	r := newTermRigWith(t, workerConfig{handlers: mux, slots: 1, timeout: time.Minute, maxResult: 1 << 20})
	stale, resign := r.campaign()
	resign()
	term, _ := r.campaign()

	task := r.task("block", term)
	r.sendTask(task)
	receive(t, b.started, "start")
	for _, tt := range []struct {
		name   string
		cancel message.Cancel
		reason string
	}{
		{"another worker's", message.Cancel{UUID: task.UUID, Executor: "w-00000002", Term: term}, "cancel is for w-00000002, not w-00000001"},
		{"a stale term", message.Cancel{UUID: task.UUID, Executor: r.w.id, Term: stale}, "stale term"},
		{"a forged term", message.Cancel{UUID: task.UUID, Executor: r.w.id, Term: 1 << 40}, "is not the current master's"},
		{"malformed", message.Cancel{UUID: "not a uuid", Executor: r.w.id, Term: term}, "invalid cancel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.cancel)
			if err != nil {
				t.Fatal(err)
			}
			if ack := r.request(message.CancelSubject(r.w.id), body); ack.Accepted || !strings.Contains(ack.Reason, tt.reason) {
				t.Fatalf("ack %+v, want refused: %s", ack, tt.reason)
			}
		})
	}
	if got := r.w.cancelled.Load(); got != 0 {
		t.Fatalf("cancelled %d after refused cancels, want 0", got)
	}
	b.releaseOne(t)
	if res := r.waitResult(task.UUID); string(res.Result) != `"released"` {
		t.Fatalf("the task's result after refused cancels: %+v", res)
	}

	late := r.task("block", term)
	if ack := r.cancel(late.UUID, r.w.id, term); !ack.Accepted || ack.Reason != "not running here" {
		t.Fatalf("cancel of a task not here: ack %+v, want accepted, not running here", ack)
	}
	if ack := r.request(message.TaskSubject(r.w.id), late.AppendJSON(nil)); ack.Accepted || ack.Reason != "cancelled" {
		t.Fatalf("a task after its cancel: ack %+v, want refused as cancelled", ack)
	}
	// A later attempt of it (a retry: its attempts go on counting) is not.
	late.Attempt = 2
	if ack := r.request(message.TaskSubject(r.w.id), late.AppendJSON(nil)); !ack.Accepted {
		t.Fatalf("a later attempt of a cancelled task: ack %+v, want taken", ack)
	}
	if got := r.w.cancelled.Load(); got != 0 {
		t.Fatalf("cancelled %d, want 0", got)
	}
}

// The worker remembers the last uuids cancelled, each for a while.
func TestCancelledIDs(t *testing.T) {
	c := newCancelledIDs(2, time.Minute)
	now := time.Now()
	c.add("a", 1, now)
	c.add("b", 1, now)
	c.add("a", 1, now) // again: b is now the oldest
	if !c.has("a", 1, now) || !c.has("b", 1, now) || c.has("c", 1, now) {
		t.Fatal("a and b, not c, should be remembered")
	}
	if c.has("a", 1, now.Add(time.Minute)) {
		t.Fatal("a is remembered past its minute")
	}
	c.add("c", 1, now)
	if !c.has("a", 1, now) || c.has("b", 1, now) || !c.has("c", 1, now) {
		t.Fatal("b, the oldest, should be forgotten for c")
	}
	if len(c.at) != 2 {
		t.Fatalf("%d uuids kept, capacity 2", len(c.at))
	}
	if c.has("a", 2, now) {
		t.Fatal("attempt 2 of a taken for cancelled: only attempt 1 was")
	}
}
