package node

import (
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// What the table remembers of the tasks it moved, for /metrics and the
// live page: counts per kind and state, and the latest failures.

// maxKindsCounted bounds the kinds the counters tell apart: kinds are any
// submitter's words, and each is a metric series. The others count
// together as otherKinds, which no kind can be named.
const (
	maxKindsCounted = 256
	otherKinds      = "(other)"
)

// failureLog is how many of the latest failed attempts the table keeps.
const failureLog = 20

// failedAttempt is one attempt that failed, as the live page shows it.
type failedAttempt struct {
	UUID     string    `json:"uuid"`
	Kind     string    `json:"kind"`
	Attempt  int       `json:"attempt"`
	Executor string    `json:"executor,omitempty"`
	Error    string    `json:"error"`
	State    string    `json:"state"` // what it led to: retrying or failed
	At       time.Time `json:"at"`
}

// countLocked counts rec's move into its state (done, failed, cancelled,
// retrying) and keeps a failed attempt in the log. The table's lock is held.
func (tt *taskTable) countLocked(rec taskstore.Record) {
	kind := rec.Kind
	if _, ok := tt.finished[kind]; !ok && len(tt.finished) >= maxKindsCounted {
		kind = otherKinds
	}
	m := tt.finished[kind]
	if m == nil {
		m = make(map[taskstore.State]int64, 4)
		tt.finished[kind] = m
	}
	m[rec.State]++
	if (rec.State == taskstore.Retrying || rec.State == taskstore.Failed) && len(rec.Errors) > 0 {
		e := rec.Errors[len(rec.Errors)-1]
		f := failedAttempt{UUID: rec.UUID, Kind: rec.Kind, Attempt: e.Attempt, Executor: e.Executor,
			Error: e.Error, State: string(rec.State), At: e.At.Time}
		if len(tt.failures) == failureLog {
			tt.failures = append(tt.failures[:0], tt.failures[1:]...)
		}
		tt.failures = append(tt.failures, f)
	}
}

// latestFailures returns the failed attempts kept, newest first.
func (tt *taskTable) latestFailures() []failedAttempt {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	out := make([]failedAttempt, len(tt.failures))
	for i, f := range tt.failures {
		out[len(out)-1-i] = f
	}
	return out
}

// lastError is a task's latest error, cut short for a listing.
func lastError(errs []message.AttemptError) string {
	if len(errs) == 0 {
		return ""
	}
	s := errs[len(errs)-1].Error
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

// queues is the table's counts per kind and state, as /status shows them.
func (k kindStats) queues() map[string]map[string]int64 {
	out := make(map[string]map[string]int64, len(k.states)+len(k.finished))
	row := func(kind string) map[string]int64 {
		r := out[kind]
		if r == nil {
			r = make(map[string]int64, 6)
			out[kind] = r
		}
		return r
	}
	for kind, states := range k.states {
		for st, n := range states {
			row(kind)[string(st)] = int64(n)
		}
	}
	for kind, moves := range k.finished {
		for st, n := range moves {
			if st.Final() {
				row(kind)[string(st)] = n
			}
		}
	}
	return out
}
