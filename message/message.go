package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// MaxSize is the largest body any decoder accepts, and the embedded NATS
// server's max_payload: a task's payload and its result are bounded below
// it by the node's --max-payload and --max-result (at most MaxData each).
const MaxSize = 2 << 20

// MaxData bounds what a payload or a result may be configured to: with
// the envelope, a message stays under MaxSize, and a task's etcd record
// (payload and result) under etcd's 1.5 MiB request limit when their sum
// is at most MaxRecordData.
const (
	MaxData       = 1 << 20
	MaxRecordData = 1<<20 + 256<<10
)

// MaxErrorLen bounds a result's error text; a worker cuts a longer one.
const MaxErrorLen = 4096

// Version is the format version of every message and record this code
// writes, their "v". A body without "v" is of version 1 too (written before
// the field existed). A decoder refuses a newer version (ErrVersion): a
// node must be upgraded before it is sent one.
const Version = 1

// TimeLayout is RFC 3339 with milliseconds, the format of start and finish.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Errors wrapped by the decoders, for errors.Is.
var (
	ErrTooLarge  = errors.New("message: too large")
	ErrMalformed = errors.New("message: malformed")
	ErrInvalid   = errors.New("message: invalid")
	ErrVersion   = errors.New("message: format version not supported")
)

// CheckVersion refuses a format version newer than Version.
func CheckVersion(v int) error {
	if v < 0 || v > Version {
		return fmt.Errorf("%w: version %d, this node reads up to %d", ErrVersion, v, Version)
	}
	return nil
}

// Task is what the master sends to one worker on tasks.<executor>.
type Task struct {
	V        int    `json:"v,omitempty"`
	UUID     string `json:"uuid"`
	Executor string `json:"executor"`
	Kind     string `json:"kind"`
	// Payload is the task's input, a JSON value.
	Payload json.RawMessage `json:"payload"`
	// Number is the payload of a KindTriple task, also written as number
	// (when not 0) for the nodes that knew no other kind.
	Number int64 `json:"number,omitempty"`
	Term   int64 `json:"term"`
	// Attempt is the task's attempt number, from 1; the worker echoes it,
	// with Term, in the task's result. A task sent again to the same worker
	// in the same attempt (a new master resuming it) is not run twice.
	Attempt int64 `json:"attempt"`
	// TimeoutMS bounds the attempt, in milliseconds; 0: the worker's
	// --task-timeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Validate checks every field. A triple task's number and payload must
// agree (DecodeTask makes them).
func (t Task) Validate() error {
	if err := CheckVersion(t.V); err != nil {
		return err
	}
	if err := validUUID(t.UUID); err != nil {
		return err
	}
	if err := ValidToken(t.Executor); err != nil {
		return fmt.Errorf("%w: executor: %w", ErrInvalid, err)
	}
	if err := ValidWork(t.Kind, t.Payload, t.Number); err != nil {
		return err
	}
	if t.Term <= 0 {
		return fmt.Errorf("%w: term must be positive, got %d", ErrInvalid, t.Term)
	}
	if t.Attempt < 0 {
		return fmt.Errorf("%w: attempt must not be negative, got %d", ErrInvalid, t.Attempt)
	}
	if t.TimeoutMS < 0 || t.TimeoutMS > MaxTimeout.Milliseconds() {
		return fmt.Errorf("%w: timeout_ms %d: want 0 to %d", ErrInvalid, t.TimeoutMS, MaxTimeout.Milliseconds())
	}
	return nil
}

// normalize fills a task written before kinds (number only) as a triple
// task, and a triple task's number from its payload.
func (t *Task) normalize() {
	t.Kind, t.Payload, t.Number = NormalizeWork(t.Kind, t.Payload, t.Number)
	if t.Kind == KindTriple {
		t.Kind = KindTriple // one string for the demo kind, not one per task kept
	}
}

// Ack is a worker's immediate answer to a task.
type Ack struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
	// Term is the newest term the worker has seen, so a deposed master learns
	// why it was refused.
	Term int64 `json:"term"`
}

// Validate checks that a refusal says why.
func (a Ack) Validate() error {
	if !a.Accepted && a.Reason == "" {
		return fmt.Errorf("%w: a refusal needs a reason", ErrInvalid)
	}
	return nil
}

// Result is what a worker publishes on results when it has done a task.
type Result struct {
	V        int    `json:"v,omitempty"`
	UUID     string `json:"uuid"`
	Executor string `json:"executor"`
	Kind     string `json:"kind"`
	// Number is a triple task's number (when not 0), as the task's.
	Number int64 `json:"number,omitempty"`
	// Result is the handler's answer, a JSON value; or Error says why
	// there is none. Exactly one of them is set.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Permanent marks an error no other attempt can mend (the handler
	// said so): the task fails at once, whatever attempts it has left.
	Permanent bool      `json:"permanent,omitempty"`
	Start     Timestamp `json:"start"`
	Finish    Timestamp `json:"finish"`
	// Term and Attempt are those of the latest sending of the task to this
	// worker: the master records a result only for a placement it made.
	Term    int64 `json:"term"`
	Attempt int64 `json:"attempt"`
}

// Validate checks every field. That the result is JSON is not checked
// again: DecodeResult's json.Unmarshal did, or the worker that made it
// (see AppendJSON); records carry results that passed one of them.
func (r Result) Validate() error {
	if err := CheckVersion(r.V); err != nil {
		return err
	}
	if err := validUUID(r.UUID); err != nil {
		return err
	}
	if err := ValidToken(r.Executor); err != nil {
		return fmt.Errorf("%w: executor: %w", ErrInvalid, err)
	}
	if err := ValidKind(r.Kind); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch {
	case len(r.Result) == 0 && r.Error == "":
		return fmt.Errorf("%w: a result needs a result or an error", ErrInvalid)
	case len(r.Result) > 0 && r.Error != "":
		return fmt.Errorf("%w: a result has a result or an error, not both", ErrInvalid)
	case len(r.Error) > MaxErrorLen:
		return fmt.Errorf("%w: error is %d bytes, limit %d", ErrInvalid, len(r.Error), MaxErrorLen)
	case r.Permanent && r.Error == "":
		return fmt.Errorf("%w: only an error can be permanent", ErrInvalid)
	}
	if r.Term <= 0 {
		return fmt.Errorf("%w: term must be positive, got %d", ErrInvalid, r.Term)
	}
	if r.Attempt < 0 {
		return fmt.Errorf("%w: attempt must not be negative, got %d", ErrInvalid, r.Attempt)
	}
	if r.Start.IsZero() || r.Finish.IsZero() {
		return fmt.Errorf("%w: start and finish are required", ErrInvalid)
	}
	if r.Finish.Before(r.Start.Time) {
		return fmt.Errorf("%w: finish %s is before start %s", ErrInvalid, r.Finish, r.Start)
	}
	return nil
}

// DecodeTask parses and validates a task. A task without a kind (written
// before kinds) is a triple task of its number.
func DecodeTask(data []byte) (Task, error) {
	var t Task
	if err := unmarshal(data, &t); err != nil {
		return Task{}, err
	}
	t.normalize()
	if err := t.Validate(); err != nil {
		return Task{}, err
	}
	return t, nil
}

// DecodeAck parses and validates an ack.
func DecodeAck(data []byte) (Ack, error) { return decode[Ack](data, maxSmall) }

// DecodeResult parses and validates a result. A result without a kind
// (written before kinds) is a triple task's.
func DecodeResult(data []byte) (Result, error) {
	var r Result
	if err := unmarshal(data, &r); err != nil {
		return Result{}, err
	}
	if r.Kind == "" || r.Kind == KindTriple {
		r.Kind = KindTriple // one string for the demo kind, not one per result kept
	}
	if err := r.Validate(); err != nil {
		return Result{}, err
	}
	return r, nil
}

type validator interface{ Validate() error }

// decode returns the zero value with every error, so a refused message never
// leaks half-filled fields to the caller. Unknown keys are ignored. max
// bounds data: MaxSize, or maxSmall for a message that never carries a
// payload or a result.
func decode[T validator](data []byte, max int) (T, error) {
	var v, zero T
	if err := unmarshalMax(data, &v, max); err != nil {
		return zero, err
	}
	if err := v.Validate(); err != nil {
		return zero, err
	}
	return v, nil
}

// maxSmall bounds a message that carries no payload or result (an ack, an
// event): they are a few hundred bytes.
const maxSmall = 4096

// unmarshal bounds data at MaxSize and parses it into v.
func unmarshal(data []byte, v any) error { return unmarshalMax(data, v, MaxSize) }

// unmarshalMax bounds data at max and parses it into v.
func unmarshalMax(data []byte, v any, max int) error {
	if len(data) > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), max)
	}
	// Unmarshal refuses trailing data after the object, and allocates far
	// less than a Decoder: this runs for every task, ack and result.
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func validUUID(s string) error {
	if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
		return fmt.Errorf("%w: uuid %q is not a canonical UUID", ErrInvalid, truncate(s))
	}
	return nil
}

// ValidToken reports whether s can stand as one NATS subject token: not
// empty, no dots, no wildcards, no white space or control characters.
func ValidToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 128 {
		return fmt.Errorf("%d bytes, limit 128", len(s))
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return fmt.Errorf("%q has a character not allowed in a subject token at byte %d", truncate(s), i)
	}
	return nil
}

// Timestamp is a time that travels as RFC 3339 with milliseconds.
type Timestamp struct{ time.Time }

// NewTimestamp rounds t to milliseconds, as it will travel.
func NewTimestamp(t time.Time) Timestamp { return Timestamp{t.Truncate(time.Millisecond)} }

// MarshalJSON writes the time in TimeLayout.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.Format(TimeLayout) + `"`), nil
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s, ok := plainString(b)
	if !ok {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("time must be an RFC 3339 string: %w", err)
		}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time must be RFC 3339: %w", err)
	}
	t.Time = v
	return nil
}

// String formats the time as it travels.
func (t Timestamp) String() string { return t.Format(TimeLayout) }

// plainString returns the contents of a JSON string without escapes or
// control characters, and false for anything else (left to encoding/json).
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	for _, c := range b[1 : len(b)-1] {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(b[1 : len(b)-1]), true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
