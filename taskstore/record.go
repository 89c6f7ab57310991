package taskstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/internal/jsonw"
	"github.com/meshpool/meshpool/message"
)

// State is where a task stands.
type State string

// The states of a task (message.States says what each means).
const (
	Pending   State = message.StatePending
	Running   State = message.StateRunning
	Retrying  State = message.StateRetrying
	Done      State = message.StateDone
	Failed    State = message.StateFailed
	Cancelled State = message.StateCancelled
)

// Final reports whether the state ends the task's life.
func (s State) Final() bool { return message.Final(string(s)) }

// Record is one task's durable state, stored as JSON at keyspace.Task(prefix, UUID).
type Record struct {
	// V is the record's format version as stored: encode writes
	// message.Version, Decode checks it and returns 0 (a record written
	// before the field existed has none: version 1).
	V    int    `json:"v,omitempty"`
	UUID string `json:"uuid"`
	// Kind and Payload are the task as submitted; Number is a triple
	// task's payload (see message.Task). A record written before kinds has
	// only a number: Decode reads it as a triple task.
	Kind      string          `json:"kind"`
	Payload   json.RawMessage `json:"payload"`
	Number    int64           `json:"number,omitempty"`
	Executor  string          `json:"executor,omitempty"` // the current or last attempt's worker; "" = none yet
	Term      int64           `json:"term"`               // term of the master that last wrote it
	State     State           `json:"state"`
	Submitted time.Time       `json:"submitted"`
	// Submitter is who submitted the task (message.SubmitterOf): a NATS
	// user's name or public nkey, message.MasterSubmitter for a task the
	// master made (a schedule's tick), "" for an anonymous submission and
	// in a record written before the field. A new master counts each
	// submitter's live tasks from it.
	Submitter string `json:"submitter,omitempty"`
	// Attempts is the current or last attempt's number: 0 before the
	// first placement, n while attempt n runs and after it failed.
	Attempts int             `json:"attempts"`
	Result   *message.Result `json:"result,omitempty"` // Done: the result; Failed: the last attempt's error, when a worker sent one
	// The task's options, defaults filled in at acceptance (0 in a record
	// written before them: the master's defaults).
	MaxAttempts int              `json:"max_attempts,omitempty"`
	Priority    int              `json:"priority,omitempty"`
	Timeout     message.Duration `json:"timeout,omitzero"`
	Backoff     message.Duration `json:"backoff,omitzero"`
	BackoffMax  message.Duration `json:"backoff_max,omitzero"`
	// NotBefore: a Pending or Retrying task is not started before it.
	NotBefore time.Time `json:"not_before,omitzero"`
	Started   time.Time `json:"started,omitzero"`  // the current or last attempt's start (its placement)
	Finished  time.Time `json:"finished,omitzero"` // when it became Done, Failed or Cancelled
	// Errors are the last message.MaxErrorsKept attempts' errors, oldest first.
	Errors []message.AttemptError `json:"errors,omitempty"`
}

var (
	// ErrInvalidRecord is matched (errors.Is) by every error Record.Validate returns.
	ErrInvalidRecord = errors.New("taskstore: invalid record")
	// ErrBadRecord is matched (errors.Is) by every error Decode returns.
	ErrBadRecord = errors.New("taskstore: bad record")
)

// Validate checks every field: the version, a canonical UUID, a kind and
// payload (message.ValidWork), an executor that is empty
// or one NATS subject token, a submitter that is empty, the master or a
// valid name (message.ValidSubmitter), a positive term, a known state, a submission
// time, no negative attempts, and a result exactly when the task is Done,
// valid and about this task (same UUID and kind).
func (r Record) Validate() error {
	if p := r.problem(); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, p)
	}
	return nil
}

// problem describes the first thing wrong with r, or returns "".
func (r Record) problem() string {
	if err := message.CheckVersion(r.V); err != nil {
		return err.Error()
	}
	if _, err := uuid.Parse(r.UUID); err != nil || len(r.UUID) != 36 {
		return fmt.Sprintf("uuid %q is not a canonical UUID", truncate(r.UUID))
	}
	if err := message.ValidWork(r.Kind, r.Payload, r.Number); err != nil {
		return err.Error()
	}
	if r.Executor != "" {
		if err := message.ValidToken(r.Executor); err != nil {
			return fmt.Sprintf("executor: %s", err)
		}
	}
	if r.Submitter != "" && r.Submitter != message.MasterSubmitter {
		if err := message.ValidSubmitter(r.Submitter); err != nil {
			return fmt.Sprintf("submitter: %s", err)
		}
	}
	switch {
	case r.Term <= 0:
		return fmt.Sprintf("term must be positive, got %d", r.Term)
	case message.ValidState(string(r.State)) != nil:
		return fmt.Sprintf("state %q: want one of %s", truncate(string(r.State)), strings.Join(message.States, ", "))
	case r.Submitted.IsZero():
		return "submitted is not set"
	case r.Attempts < 0:
		return fmt.Sprintf("attempts must not be negative, got %d", r.Attempts)
	case r.Result != nil && r.State != Done && r.State != Failed:
		return fmt.Sprintf("a %s task has no result", r.State)
	case r.State == Done && r.Result == nil:
		return "a done task needs its result"
	case r.State == Failed && r.Result != nil && r.Result.Error == "":
		return "a failed task's result is an error"
	case r.State == Running && r.Executor == "":
		return "a running task needs its executor"
	case len(r.Errors) > message.MaxErrorsKept:
		return fmt.Sprintf("%d errors kept, limit %d", len(r.Errors), message.MaxErrorsKept)
	}
	opts := message.Options{Timeout: r.Timeout, MaxAttempts: r.MaxAttempts, Priority: r.Priority, Backoff: r.Backoff, BackoffMax: r.BackoffMax}
	if err := opts.Validate(); err != nil {
		return err.Error()
	}
	for _, e := range r.Errors {
		if len(e.Error) > message.MaxErrorLen {
			return fmt.Sprintf("an error kept is %d bytes, limit %d", len(e.Error), message.MaxErrorLen)
		}
	}
	if r.Result != nil {
		if err := r.Result.Validate(); err != nil {
			return fmt.Sprintf("result: %s", err)
		}
		if r.Result.UUID != r.UUID {
			return fmt.Sprintf("result is about another task, %s", r.Result.UUID)
		}
		if r.Result.Kind != r.Kind {
			return fmt.Sprintf("result kind %q is not the task's %q", truncate(r.Result.Kind), truncate(r.Kind))
		}
		if r.Kind == message.KindTriple && r.Result.Number != r.Number {
			return fmt.Sprintf("result number %d is not the task's %d", r.Result.Number, r.Number)
		}
	}
	return ""
}

// Decode parses the value stored at key and checks it: the record must be
// valid and its UUID must be the last segment of key. Every error names key
// and matches ErrBadRecord.
func Decode(key string, value []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return Record{}, fmt.Errorf("%w at %s: %w", ErrBadRecord, truncateN(key, 256), err)
	}
	r.Kind, r.Payload, r.Number = message.NormalizeWork(r.Kind, r.Payload, r.Number)
	if r.Result != nil && r.Result.Kind == "" { // written before kinds
		r.Result.Kind = message.KindTriple
	}
	if p := r.problem(); p != "" {
		return Record{}, fmt.Errorf("%w at %s: %s", ErrBadRecord, truncateN(key, 256), p)
	}
	if !strings.HasSuffix(key, "/"+r.UUID) {
		return Record{}, fmt.Errorf("%w at %s: uuid %s does not match the key", ErrBadRecord, truncateN(key, 256), r.UUID)
	}
	r.V = 0
	if r.Result != nil {
		r.Result.V = 0
	}
	return r, nil
}

// encode is the inverse of Decode. It writes what json.Marshal writes
// (record_test.go checks that byte for byte) without reflection: a
// master encodes a record twice per task.
func (r Record) encode() (string, error) {
	return r.appendJSON(make([]byte, 0, 320+len(r.Payload)))
}

func (r Record) appendJSON(b []byte) (string, error) {
	b = append(b, `{"v":`...)
	b = jsonw.Int(b, message.Version)
	b = jsonw.String(jsonw.Key(b, "uuid"), r.UUID)
	b = jsonw.String(jsonw.Key(b, "kind"), r.Kind)
	b = append(jsonw.Key(b, "payload"), r.Payload...)
	if r.Number != 0 {
		b = jsonw.Int(jsonw.Key(b, "number"), r.Number)
	}
	if r.Executor != "" {
		b = jsonw.String(jsonw.Key(b, "executor"), r.Executor)
	}
	b = jsonw.Int(jsonw.Key(b, "term"), r.Term)
	b = jsonw.String(jsonw.Key(b, "state"), string(r.State))
	b, err := jsonw.Time(jsonw.Key(b, "submitted"), r.Submitted)
	if err != nil {
		return "", fmt.Errorf("taskstore: cannot encode task %s: %w", r.UUID, err)
	}
	if r.Submitter != "" {
		b = jsonw.String(jsonw.Key(b, "submitter"), r.Submitter)
	}
	b = jsonw.Int(jsonw.Key(b, "attempts"), int64(r.Attempts))
	if r.Result != nil {
		b = r.Result.AppendJSON(jsonw.Key(b, "result"))
	}
	if r.MaxAttempts != 0 {
		b = jsonw.Int(jsonw.Key(b, "max_attempts"), int64(r.MaxAttempts))
	}
	if r.Priority != 0 {
		b = jsonw.Int(jsonw.Key(b, "priority"), int64(r.Priority))
	}
	b = appendDuration(b, "timeout", r.Timeout)
	b = appendDuration(b, "backoff", r.Backoff)
	b = appendDuration(b, "backoff_max", r.BackoffMax)
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"not_before", r.NotBefore}, {"started", r.Started}, {"finished", r.Finished}} {
		if !t.t.IsZero() {
			if b, err = jsonw.Time(jsonw.Key(b, t.name), t.t); err != nil {
				return "", fmt.Errorf("taskstore: cannot encode task %s: %w", r.UUID, err)
			}
		}
	}
	if len(r.Errors) > 0 {
		b = append(jsonw.Key(b, "errors"), '[')
		for i, e := range r.Errors {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.AppendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	return string(b), nil
}

func appendDuration(b []byte, name string, d message.Duration) []byte {
	if d == 0 {
		return b
	}
	return jsonw.String(jsonw.Key(b, name), d.D().String())
}

func truncate(s string) string { return truncateN(s, 64) }

// truncateN cuts s to n bytes, on a rune boundary, marking the cut.
func truncateN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
