package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
)

// A task the worker took runs here: in a free slot, through its kind's
// handler, under the task's timeout; its outcome becomes a result, unless
// the master cancels it first.

// work runs task's handler in a free slot, under ctx, and publishes its
// result. The task's time runs from when the worker took it (deadline), as
// the master's does from the ack: a task still waiting for a slot at its
// deadline is not run at all, since the master gives it to another worker.
// A task cancelled by the master (ctx ends with errCancelled) or abandoned
// at shutdown (w.ctx ends) publishes nothing.
func (w *worker) work(ctx context.Context, task message.Task, key taskKey, t *runningTask, handler meshpool.Handler, deadline time.Time) {
	defer w.wg.Done()
	defer w.inFlight.Add(-1)
	defer t.cancel(nil)
	late := time.NewTimer(time.Until(deadline))
	select {
	case w.slotSem <- struct{}{}:
		late.Stop()
	case <-late.C:
		w.dropped(task, key, t, "task not started before its timeout: every slot was busy; the master gives it to another worker")
		return
	case <-ctx.Done():
		late.Stop()
		w.dropped(task, key, t, "task abandoned at shutdown")
		return
	}
	if ctx.Err() != nil { // ended as the slot came free
		<-w.slotSem
		w.dropped(task, key, t, "task abandoned at shutdown")
		return
	}
	start := time.Now()
	result, err := w.run(ctx, task, handler, deadline)
	<-w.slotSem
	res := message.Result{
		UUID:     task.UUID,
		Executor: w.id,
		Kind:     task.Kind,
		Number:   task.Number,
		Start:    message.NewTimestamp(start),
		Finish:   message.NewTimestamp(time.Now()),
	}
	if err != nil {
		res.Error = errorText(err)
		res.Permanent = meshpool.IsPermanent(err)
	} else {
		res.Result = result
	}
	w.mu.Lock()
	if t.cancelled || w.ctx.Err() != nil {
		w.mu.Unlock()
		w.dropped(task, key, t, "task abandoned at shutdown")
		return
	}
	// The task may have been sent again meanwhile (a new master, a
	// timeout): the result answers the latest sending, which its master
	// waits for. It moves from running to recent at once, so a sending
	// from now on publishes it again under its own term and attempt.
	res.Term, res.Attempt = t.term, t.attempt
	w.recent.add(res, key.print)
	delete(w.running, key)
	w.mu.Unlock()
	w.completed.Add(1)
	took := res.Finish.Sub(res.Start.Time)
	if err != nil {
		w.failed.Add(1)
		w.log.Warn("task failed", ratelog.Limit, "uuid", task.UUID, "kind", task.Kind, "err", res.Error, "permanent", res.Permanent, "took", took)
	} else {
		w.log.Info("task done", "uuid", task.UUID, "kind", task.Kind, "result", logText(res.Result), "took", took)
	}
	w.publish(res)
}

// dropped forgets a task that publishes no result, and says why: the
// master cancelled it (see cancel), or why.
func (w *worker) dropped(task message.Task, key taskKey, t *runningTask, why string) {
	w.mu.Lock()
	cancelled := t.cancelled
	if w.running[key] == t { // a cancelled task is out already, and another may run under its key
		delete(w.running, key)
	}
	w.mu.Unlock()
	if cancelled {
		w.log.Info("task cancelled", "uuid", task.UUID, "kind", task.Kind)
		return
	}
	w.log.Warn(why, ratelog.Limit, "uuid", task.UUID, "kind", task.Kind)
}

// errNotJSON is a handler's result that is not one JSON value.
var errNotJSON = errors.New("the handler's result is not JSON")

// run calls handler with a context that ends at the task's deadline or
// with ctx (the task is cancelled, or in-flight work abandoned). A panic
// becomes the task's error (never a permanent one); so does a result that
// is not JSON or is larger than maxResult.
func (w *worker) run(ctx context.Context, task message.Task, handler meshpool.Handler, deadline time.Time) (result json.RawMessage, err error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	n := w.busy.Add(1)
	defer w.busy.Add(-1)
	for {
		if m := w.maxBusy.Load(); n <= m || w.maxBusy.CompareAndSwap(m, n) {
			break
		}
	}
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("handler panicked", "uuid", task.UUID, "kind", task.Kind, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	result, err = handler.Work(ctx, &meshpool.Task{UUID: task.UUID, Kind: task.Kind, Payload: task.Payload, Attempt: int(task.Attempt)})
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return nil, fmt.Errorf("timed out after %s: %w", w.taskTimeout(task), err)
	case err != nil:
		return nil, err
	case len(result) == 0:
		return json.RawMessage("null"), nil
	case len(result) > w.maxResult:
		return nil, fmt.Errorf("result is %d bytes, more than --max-result %d", len(result), w.maxResult)
	case !json.Valid(result):
		return nil, errNotJSON
	}
	return result, nil
}

// errorText is err's text as a result carries it: at most
// message.MaxErrorLen bytes, never empty.
func errorText(err error) string {
	s := err.Error()
	if s == "" {
		s = fmt.Sprintf("%T with no text", err)
	}
	if len(s) > message.MaxErrorLen {
		n := message.MaxErrorLen - len("…")
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}

// logText is a result as a log line shows it: cut at 200 bytes.
func logText(b json.RawMessage) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
