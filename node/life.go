package node

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// A task's life on the master (message.States): every move is a record
// written, fenced by the term, before the master acts on it.
//
//	admitted      → running, attempt 1 (a slot was free), or pending (none
//	                free, or not before run_at)
//	placed        → running, attempt n+1 when it was pending or retrying;
//	                the same attempt when it only moves to another worker
//	                that has not started it
//	result        → done
//	error, lost   → retrying until its backoff ends, or failed (attempts
//	                used up, or a permanent error)
//	cancel        → cancelled
//
// An attempt counts from its placement on a worker: a worker that dies or
// stops answering in the middle uses it up, so a task that kills every
// worker it touches fails after its max_attempts.

// lifePolicy is the node's defaults for a task's options.
type lifePolicy struct {
	maxAttempts int
	timeout     time.Duration // one attempt's, --task-timeout
	backoff     time.Duration // before attempt 2
	backoffMax  time.Duration
}

// withDefaults fills r's options that its submission left at 0.
func (p lifePolicy) withDefaults(r *taskstore.Record) {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = p.maxAttempts
	}
	if r.Timeout == 0 {
		r.Timeout = message.Duration(p.timeout)
	}
	if r.Backoff == 0 {
		r.Backoff = message.Duration(p.backoff)
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = message.Duration(p.backoffMax)
	}
}

// timeoutOf is one attempt's time for r: its own, or the policy's for a
// record written before options.
func (p lifePolicy) timeoutOf(r *taskstore.Record) time.Duration {
	if r.Timeout > 0 {
		return r.Timeout.D()
	}
	return p.timeout
}

// backoffAfter is the wait before the attempt after attempt n (from 1):
// base × 2^(n-1), at most max, of which a random half is taken off (so
// retries of many tasks that failed together spread out), and never less
// than a millisecond.
func backoffAfter(n int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d)/2+rnd()*float64(d)/2).Round(time.Millisecond) + time.Millisecond
}

// failure is one attempt's end without a result: a worker's error, or one
// the master made (its worker left, or did not answer in time).
type failure struct {
	executor  string
	attempt   int
	err       string
	permanent bool
	result    *message.Result // the worker's, when it sent one
}

// afterFailure returns r as it stands after f: retrying until now plus its
// backoff, or failed (permanent, or no attempt left). r is live.
func afterFailure(r taskstore.Record, f failure, now time.Time, p lifePolicy, rnd func() float64) taskstore.Record {
	p.withDefaults(&r)
	r.Errors = appendError(r.Errors, message.AttemptError{Attempt: f.attempt, Executor: f.executor, Error: f.err, At: message.NewTimestamp(now)})
	if f.permanent || r.Attempts >= r.MaxAttempts {
		r.State, r.Finished, r.NotBefore = taskstore.Failed, now.UTC(), time.Time{}
		r.Result = f.result
		return r
	}
	r.State = taskstore.Retrying
	r.NotBefore = now.Add(backoffAfter(r.Attempts, r.Backoff.D(), r.BackoffMax.D(), rnd)).UTC()
	r.Result = nil
	return r
}

// appendError keeps the last MaxErrorsKept errors.
func appendError(errs []message.AttemptError, e message.AttemptError) []message.AttemptError {
	if len(errs) >= message.MaxErrorsKept {
		errs = errs[len(errs)-message.MaxErrorsKept+1:]
	}
	out := make([]message.AttemptError, 0, len(errs)+1) // never share the kept record's array
	return append(append(out, errs...), e)
}

// startAttempt returns r as placed on worker w at now: a new attempt when
// it was not running, the same one moved otherwise.
func startAttempt(r taskstore.Record, w string, now time.Time) taskstore.Record {
	if r.State != taskstore.Running {
		r.Attempts++
		r.State, r.Started, r.NotBefore = taskstore.Running, now.UTC(), time.Time{}
	}
	r.Executor = w
	return r
}

// lostText says why the master gave up on an attempt that sent no result.
func lostText(executor string, attempt int, why string) string {
	return fmt.Sprintf("attempt %d on %s: %s", attempt, executor, why)
}

// jitter is the randomness of backoffs; a test may fix it.
var jitter = rand.Float64

// info is a record as a client is shown it.
func info(r taskstore.Record, ephemeral bool) message.TaskInfo {
	ti := message.TaskInfo{
		UUID: r.UUID, Kind: r.Kind, State: string(r.State), Durability: durability(ephemeral), Payload: r.Payload,
		Priority: r.Priority, Attempts: r.Attempts, MaxAttempts: r.MaxAttempts, Timeout: r.Timeout,
		Executor: r.Executor, Errors: r.Errors, Result: r.Result,
		Submitted: message.Stamp(r.Submitted), Started: message.Stamp(r.Started), Finished: message.Stamp(r.Finished),
	}
	if r.State == taskstore.Pending || r.State == taskstore.Retrying {
		ti.NextAt = message.Stamp(r.NotBefore)
	}
	return ti
}
