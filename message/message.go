package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// MaxSize is the largest body any decoder accepts. Real messages are a few
// hundred bytes.
const MaxSize = 4096

// TimeLayout is RFC 3339 with milliseconds, the format of start and finish.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Errors wrapped by the decoders, for errors.Is.
var (
	ErrTooLarge  = errors.New("message: too large")
	ErrMalformed = errors.New("message: malformed")
	ErrInvalid   = errors.New("message: invalid")
)

// Task is what the master sends to one worker on tasks.<executor>.
type Task struct {
	UUID     string `json:"uuid"`
	Executor string `json:"executor"`
	Number   int64  `json:"number"`
	Term     int64  `json:"term"`
	// Attempt is the master's placement count of the task, from 1; the
	// worker echoes it, with Term, in the task's result.
	Attempt int64 `json:"attempt"`
}

// Validate checks every field.
func (t Task) Validate() error {
	if err := validUUID(t.UUID); err != nil {
		return err
	}
	if err := ValidToken(t.Executor); err != nil {
		return fmt.Errorf("%w: executor: %w", ErrInvalid, err)
	}
	if t.Term <= 0 {
		return fmt.Errorf("%w: term must be positive, got %d", ErrInvalid, t.Term)
	}
	if t.Attempt < 0 {
		return fmt.Errorf("%w: attempt must not be negative, got %d", ErrInvalid, t.Attempt)
	}
	return ValidNumber(t.Number)
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
	UUID     string    `json:"uuid"`
	Executor string    `json:"executor"`
	Number   int64     `json:"number"`
	Result   int64     `json:"result"`
	Start    Timestamp `json:"start"`
	Finish   Timestamp `json:"finish"`
	// Term and Attempt are those of the latest sending of the task to this
	// worker: the master records a result only for a placement it made.
	Term    int64 `json:"term"`
	Attempt int64 `json:"attempt"`
}

// Validate checks every field.
func (r Result) Validate() error {
	if err := validUUID(r.UUID); err != nil {
		return err
	}
	if err := ValidToken(r.Executor); err != nil {
		return fmt.Errorf("%w: executor: %w", ErrInvalid, err)
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

// DecodeTask parses and validates a task.
func DecodeTask(data []byte) (Task, error) { return decode[Task](data) }

// DecodeAck parses and validates an ack.
func DecodeAck(data []byte) (Ack, error) { return decode[Ack](data) }

// DecodeResult parses and validates a result.
func DecodeResult(data []byte) (Result, error) { return decode[Result](data) }

type validator interface{ Validate() error }

// decode returns the zero value with every error, so a refused message never
// leaks half-filled fields to the caller. Unknown keys are ignored.
func decode[T validator](data []byte) (T, error) { return decodeFields[T](data, nil) }

// decodeFields is decode that, given fields, also refuses keys not among
// them and requires the required ones (see checkFields).
func decodeFields[T validator](data []byte, fields []field) (T, error) {
	var v, zero T
	if len(data) > MaxSize {
		return zero, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSize)
	}
	// Unmarshal refuses trailing data after the object, and allocates far
	// less than a Decoder: this runs for every task, ack and result.
	if err := json.Unmarshal(data, &v); err != nil {
		return zero, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if fields != nil {
		if err := checkFields(data, fields); err != nil {
			return zero, err
		}
	}
	if err := v.Validate(); err != nil {
		return zero, err
	}
	return v, nil
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
