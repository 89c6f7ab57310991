package message

import (
	"fmt"
	"strings"
)

// MaxNumber bounds a task's number so that number*3 cannot overflow.
const MaxNumber = 1 << 60

// ValidNumber checks a task's number, for a submission and for a task alike.
func ValidNumber(n int64) error {
	if n < -MaxNumber || n > MaxNumber {
		return fmt.Errorf("%w: number %d out of range ±2^60", ErrInvalid, n)
	}
	return nil
}

// CanonicalUUID is the form a submitted UUID is kept and compared in: lower
// case, so that ABC… and abc… name the same task.
func CanonicalUUID(s string) string { return strings.ToLower(s) }

// Submit is a client's request on tasks.submit. Its decoder is strict:
// every key must be one of submitFields, and number is required.
type Submit struct {
	// UUID is optional: the idempotency key. A task submitted again with
	// the same UUID is not run twice. Case does not matter: DecodeSubmit
	// returns it in CanonicalUUID form.
	UUID   string `json:"uuid,omitempty"`
	Number int64  `json:"number"`
	// Durability is DurabilityDurable (also when empty) or DurabilityNone.
	Durability string `json:"durability,omitempty"`
}

// Durability of a submitted task.
const (
	// DurabilityDurable: the task is recorded in etcd before it is
	// accepted, and its result is recorded once; a new master resumes it.
	DurabilityDurable = "durable"
	// DurabilityNone: the task is accepted at once and tracked only in the
	// master's memory. It is retried if its worker fails, but lost if the
	// master fails: for work that may be lost, such as the demo's.
	DurabilityNone = "none"
)

// Ephemeral reports whether the task is not to be recorded.
func (s Submit) Ephemeral() bool { return s.Durability == DurabilityNone }

// Validate checks the number's range and, when given, the UUID.
func (s Submit) Validate() error {
	if s.UUID != "" {
		if err := validUUID(s.UUID); err != nil {
			return err
		}
	}
	switch s.Durability {
	case "", DurabilityDurable, DurabilityNone:
	default:
		return fmt.Errorf("%w: durability %q: want %q or %q", ErrInvalid, truncate(s.Durability), DurabilityDurable, DurabilityNone)
	}
	return ValidNumber(s.Number)
}

// submitFields are the keys a submission may carry, one per Submit field.
// A body without number (e.g. a master's SubmitReply) is not a submission.
var submitFields = []field{
	{name: "uuid"},
	{name: "number", required: true},
	{name: "durability"},
}

// DecodeSubmit parses and validates a submission: unknown keys are refused,
// number must be given, and the UUID comes back in CanonicalUUID form.
func DecodeSubmit(data []byte) (Submit, error) {
	s, err := decodeFields[Submit](data, submitFields)
	if err != nil {
		return Submit{}, err
	}
	s.UUID = CanonicalUUID(s.UUID)
	return s, nil
}

// Task states, as a submitter sees them.
const (
	StatePending = "pending"
	StateDone    = "done"
)

// SubmitReply is the master's answer on tasks.submit.
type SubmitReply struct {
	UUID     string `json:"uuid,omitempty"`
	Accepted bool   `json:"accepted"`
	// Duplicate says the UUID was known: the task is not run again, State
	// says where it is, and Result is set when it is done.
	Duplicate bool    `json:"duplicate,omitempty"`
	State     string  `json:"state,omitempty"`
	Result    *Result `json:"result,omitempty"`
	Term      int64   `json:"term,omitempty"`
	// Error says why the task was not accepted, e.g. "invalid task: …".
	Error string `json:"error,omitempty"`
	// Temporary marks an error after which nothing was recorded and the
	// same submission may succeed later (etcd unreachable, master busy).
	Temporary bool `json:"temporary,omitempty"`
}

// Validate checks that an answer either accepts with a UUID or says why not.
func (r SubmitReply) Validate() error {
	if r.Accepted && r.UUID == "" {
		return fmt.Errorf("%w: an accepted task needs its uuid", ErrInvalid)
	}
	if !r.Accepted && r.Error == "" {
		return fmt.Errorf("%w: a refusal needs an error", ErrInvalid)
	}
	return nil
}

// DecodeSubmitReply parses and validates a master's answer.
func DecodeSubmitReply(data []byte) (SubmitReply, error) { return decode[SubmitReply](data) }
