package message

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// A task's life, as every client sees it (docs/contracts.md, "The life of
// a task"):
//
//	pending ──▶ running (attempt n) ──▶ done
//	   ▲            │  └──▶ failed      (attempts used up, or a permanent error)
//	   │            ▼
//	   └──────  retrying                (until its backoff ends)
//
// and cancelled from pending, running or retrying. done, failed and
// cancelled are final; retry makes a failed or cancelled task pending again.
const (
	StatePending   = "pending"   // accepted, waiting for its time (run_at), a free slot or a worker
	StateRunning   = "running"   // on a worker, as attempt n
	StateRetrying  = "retrying"  // attempt n failed; attempt n+1 waits for its backoff to end
	StateDone      = "done"      // a result recorded
	StateFailed    = "failed"    // attempts used up, or a permanent error: kept for --failed-retention
	StateCancelled = "cancelled" // cancelled by a client: kept for --failed-retention
)

// States lists every state, in the order of a task's life.
var States = []string{StatePending, StateRunning, StateRetrying, StateDone, StateFailed, StateCancelled}

// ValidState checks a state's name.
func ValidState(s string) error {
	for _, st := range States {
		if s == st {
			return nil
		}
	}
	return fmt.Errorf("%w: state %q: want one of pending, running, retrying, done, failed, cancelled", ErrInvalid, truncate(s))
}

// Final reports whether a task in state s is over: done, failed or cancelled.
func Final(s string) bool { return s == StateDone || s == StateFailed || s == StateCancelled }

// Bounds of the per-task options a submission may carry.
const (
	MaxTimeout    = 24 * time.Hour       // timeout: one attempt's time at most
	MaxAttempts   = 100                  // max_attempts at most
	MaxDelay      = 366 * 24 * time.Hour // delay, or run_at from now, at most
	MaxPriority   = 9                    // priority is 0 (the default, lowest) to 9
	MaxBackoff    = 24 * time.Hour       // backoff and backoff_max at most
	MaxErrorsKept = 5                    // the last errors a task's record keeps
)

// Duration is a time.Duration that travels as Go's duration text, "90s",
// "1m30s", "250ms". Zero is not written.
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON reads Go's duration text.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\" or \"1m30s\", got %s", truncate(string(b)))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\" or \"1m30s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// IsZero reports a zero duration, for omitzero.
func (d Duration) IsZero() bool { return d == 0 }

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Options are the per-task options a submission may carry; zero fields
// take the node's defaults (--task-timeout, --max-attempts, --backoff,
// --backoff-max).
type Options struct {
	// Timeout bounds one attempt: the worker's handler context ends at it
	// (an --exec process group is killed).
	Timeout Duration `json:"timeout,omitzero"`
	// MaxAttempts is how many attempts the task gets in all, from 1.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// RunAt or Delay (not both): the task is not started before then.
	RunAt Timestamp `json:"run_at,omitzero"`
	Delay Duration  `json:"delay,omitzero"`
	// Priority, 0 to MaxPriority: within a kind, higher goes first.
	Priority int `json:"priority,omitempty"`
	// Backoff and BackoffMax shape the wait before attempt n+1: about
	// Backoff × 2^(n-1), at most BackoffMax, with jitter.
	Backoff    Duration `json:"backoff,omitzero"`
	BackoffMax Duration `json:"backoff_max,omitzero"`
}

// Validate checks each option against its bounds.
func (o Options) Validate() error {
	switch {
	case o.Timeout < 0 || o.Timeout.D() > MaxTimeout:
		return fmt.Errorf("%w: timeout %s: want more than 0 and at most %s", ErrInvalid, o.Timeout.D(), MaxTimeout)
	case o.MaxAttempts < 0 || o.MaxAttempts > MaxAttempts:
		return fmt.Errorf("%w: max_attempts %d: want 1 to %d", ErrInvalid, o.MaxAttempts, MaxAttempts)
	case !o.RunAt.IsZero() && o.Delay != 0:
		return fmt.Errorf("%w: run_at and delay: give one or the other", ErrInvalid)
	case o.Delay < 0 || o.Delay.D() > MaxDelay:
		return fmt.Errorf("%w: delay %s: want 0 to %s", ErrInvalid, o.Delay.D(), MaxDelay)
	case o.Priority < 0 || o.Priority > MaxPriority:
		return fmt.Errorf("%w: priority %d: want 0 to %d", ErrInvalid, o.Priority, MaxPriority)
	case o.Backoff < 0 || o.Backoff.D() > MaxBackoff:
		return fmt.Errorf("%w: backoff %s: want 0 to %s", ErrInvalid, o.Backoff.D(), MaxBackoff)
	case o.BackoffMax < 0 || o.BackoffMax.D() > MaxBackoff:
		return fmt.Errorf("%w: backoff_max %s: want 0 to %s", ErrInvalid, o.BackoffMax.D(), MaxBackoff)
	}
	if y := o.RunAt.Year(); !o.RunAt.IsZero() && (y < 2000 || y > 9999) {
		return fmt.Errorf("%w: run_at %s is not a time a task can be run at", ErrInvalid, o.RunAt.Format(time.RFC3339))
	}
	return nil
}

// appendJSON appends the options that are set, as json.Marshal does.
func (o Options) appendJSON(b []byte) []byte {
	if o.Timeout != 0 {
		b = strconv.AppendQuote(append(b, `,"timeout":`...), o.Timeout.D().String())
	}
	if o.MaxAttempts != 0 {
		b = strconv.AppendInt(append(b, `,"max_attempts":`...), int64(o.MaxAttempts), 10)
	}
	if !o.RunAt.IsZero() {
		b = append(append(append(b, `,"run_at":"`...), o.RunAt.Format(TimeLayout)...), '"')
	}
	if o.Delay != 0 {
		b = strconv.AppendQuote(append(b, `,"delay":`...), o.Delay.D().String())
	}
	if o.Priority != 0 {
		b = strconv.AppendInt(append(b, `,"priority":`...), int64(o.Priority), 10)
	}
	if o.Backoff != 0 {
		b = strconv.AppendQuote(append(b, `,"backoff":`...), o.Backoff.D().String())
	}
	if o.BackoffMax != 0 {
		b = strconv.AppendQuote(append(b, `,"backoff_max":`...), o.BackoffMax.D().String())
	}
	return b
}
