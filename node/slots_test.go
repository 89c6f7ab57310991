package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// A worker runs at most its slots at once whoever sends it tasks (here
// straight on tasks.<id>, no master counting for it), takes as many again
// to wait for a slot, and refuses more as busy.
func TestWorkerRunsAtMostItsSlots(t *testing.T) {
	var now, most atomic.Int64
	release := make(chan struct{})
	mux := meshpool.NewMux()
	mux.HandleFunc("nap", func(ctx context.Context, _ *meshpool.Task) (json.RawMessage, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return json.RawMessage("true"), nil
	})
	r := newTermRigWith(t, workerConfig{handlers: mux, slots: 2, timeout: time.Minute, maxResult: 1 << 20})
	term, _ := r.campaign()
	send := func() message.Ack {
		task := message.Task{UUID: uuid.NewString(), Executor: r.w.id, Kind: "nap", Payload: json.RawMessage("null"), Term: term, Attempt: 1}
		msg, err := r.conn.Request(message.TaskSubject(r.w.id), task.AppendJSON(nil), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := message.DecodeAck(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	for i := range 4 {
		if ack := send(); !ack.Accepted {
			t.Fatalf("task %d of 4 (2 slots, 2 waiting) refused: %s", i+1, ack.Reason)
		}
	}
	if ack := send(); ack.Accepted || !strings.HasPrefix(ack.Reason, "busy: 4 tasks taken for 2 slots") {
		t.Fatalf("a 5th task: %+v; want it refused as busy", ack)
	}
	testutil.Eventually(t, 5*time.Second, "two handlers running", func() bool { return now.Load() == 2 })
	testutil.Consistently(t, 200*time.Millisecond, "no third handler", func() bool { return now.Load() <= 2 })
	close(release)
	testutil.Eventually(t, 5*time.Second, "the four results", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.results) == 4
	})
	if m := most.Load(); m != 2 || r.w.maxBusy.Load() != 2 {
		t.Fatalf("at most %d handlers ran at once (worker saw %d), want 2", m, r.w.maxBusy.Load())
	}
}

// A task's time runs from when the worker took it: one still waiting for
// a slot at its timeout is never run (the master gives it to another
// worker), so a stuck handler cannot make a task run twice.
func TestTaskPastItsTimeoutWaitingForASlotIsNotRun(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	mux := meshpool.NewMux()
	mux.HandleFunc("stuck", func(ctx context.Context, _ *meshpool.Task) (json.RawMessage, error) {
		calls.Add(1)
		<-release // ignores ctx
		return json.RawMessage("true"), nil
	})
	r := newTermRigWith(t, workerConfig{handlers: mux, slots: 1, timeout: 300 * time.Millisecond, maxResult: 1 << 20})
	term, _ := r.campaign()
	for range 2 {
		task := message.Task{UUID: uuid.NewString(), Executor: r.w.id, Kind: "stuck", Payload: json.RawMessage("null"), Term: term, Attempt: 1}
		if _, err := r.conn.Request(message.TaskSubject(r.w.id), task.AppendJSON(nil), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the waiting task dropped at its timeout", func() bool { return r.w.inFlight.Load() == 1 })
	close(release)
	testutil.Eventually(t, 5*time.Second, "the first task's result", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.results) == 1
	})
	testutil.Consistently(t, 300*time.Millisecond, "the dropped task not run", func() bool { return calls.Load() == 1 })
}
