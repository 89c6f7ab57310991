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
// handler, under the task timeout; its outcome becomes a result.

// work runs task's handler in a free slot and publishes its result. The
// task's time runs from when the worker took it (deadline), as the
// master's does from the ack: a task still waiting for a slot at its
// deadline is not run at all, since the master gives it to another worker.
// A task abandoned at shutdown publishes nothing either.
func (w *worker) work(task message.Task, key taskKey, handler meshpool.Handler, deadline time.Time) {
	defer w.wg.Done()
	defer w.inFlight.Add(-1)
	late := time.NewTimer(time.Until(deadline))
	select {
	case w.slotSem <- struct{}{}:
		late.Stop()
	case <-late.C:
		w.dropped(task, key, "task not started before its timeout: every slot was busy; the master gives it to another worker")
		return
	case <-w.ctx.Done():
		late.Stop()
		w.abandoned(task, key)
		return
	}
	start := time.Now()
	result, err := w.run(task, handler, deadline)
	<-w.slotSem
	if w.ctx.Err() != nil {
		w.abandoned(task, key)
		return
	}
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
	} else {
		res.Result = result
	}
	w.mu.Lock()
	// The task may have been sent again meanwhile (a new master, a
	// timeout): the result answers the latest sending, which its master
	// waits for. It moves from running to recent at once, so a sending
	// from now on publishes it again under its own term and attempt.
	s := w.running[key]
	res.Term, res.Attempt = s.term, s.attempt
	w.recent.add(res, key.print)
	delete(w.running, key)
	w.mu.Unlock()
	w.completed.Add(1)
	took := res.Finish.Sub(res.Start.Time)
	if err != nil {
		w.failed.Add(1)
		w.log.Warn("task failed", ratelog.Limit, "uuid", task.UUID, "kind", task.Kind, "err", res.Error, "took", took)
	} else {
		w.log.Info("task done", "uuid", task.UUID, "kind", task.Kind, "result", logText(res.Result), "took", took)
	}
	w.publish(res)
}

func (w *worker) abandoned(task message.Task, key taskKey) {
	w.dropped(task, key, "task abandoned at shutdown")
}

// dropped forgets a task it will not run, and says why.
func (w *worker) dropped(task message.Task, key taskKey, why string) {
	w.mu.Lock()
	delete(w.running, key)
	w.mu.Unlock()
	w.log.Warn(why, ratelog.Limit, "uuid", task.UUID, "kind", task.Kind)
}

// errNotJSON is a handler's result that is not one JSON value.
var errNotJSON = errors.New("the handler's result is not JSON")

// run calls handler with a context that ends at the task's deadline or
// when in-flight work is abandoned. A panic becomes the task's error; so
// does a result that is not JSON or is larger than maxResult.
func (w *worker) run(task message.Task, handler meshpool.Handler, deadline time.Time) (result json.RawMessage, err error) {
	ctx, cancel := context.WithDeadline(w.ctx, deadline)
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
		return nil, fmt.Errorf("timed out after %s: %w", w.timeout, err)
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
