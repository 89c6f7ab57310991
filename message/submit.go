package message

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
// every key must be one of submitFields, and a kind (or, for the demo kind,
// a number alone) is required.
type Submit struct {
	V int `json:"v,omitempty"`
	// UUID is optional: the idempotency key. A task submitted again with
	// the same UUID is not run twice. Case does not matter: DecodeSubmit
	// returns it in CanonicalUUID form.
	UUID string `json:"uuid,omitempty"`
	// Kind names the handler that runs the task; Payload is its input, any
	// JSON value (null when not given).
	Kind    string          `json:"kind,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Number is the demo's shorthand: {"number":N} is {"kind":"triple",
	// "payload":N}. DecodeSubmit fills it for every triple task.
	Number int64 `json:"number,omitempty"`
	// Durability is DurabilityDurable (also when empty) or DurabilityNone.
	Durability string `json:"durability,omitempty"`
	// Options: timeout, attempts and backoff, run_at or delay, priority.
	Options
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

// Validate checks the version, the kind and payload (a triple task's
// number and payload must agree, as DecodeSubmit makes them), the
// durability and, when given, the UUID.
func (s Submit) Validate() error {
	if err := CheckVersion(s.V); err != nil {
		return err
	}
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
	if err := s.Options.Validate(); err != nil {
		return err
	}
	return ValidWork(s.Kind, s.Payload, s.Number)
}

// submitFields are the keys a submission may carry, one per Submit field.
// A body with neither kind nor number (e.g. a master's SubmitReply) is not
// a submission.
var submitFields = []field{
	{name: "v"},
	{name: "uuid"},
	{name: "kind"},
	{name: "payload"},
	{name: "number"},
	{name: "durability"},
	{name: "timeout"},
	{name: "max_attempts"},
	{name: "run_at"},
	{name: "delay"},
	{name: "priority"},
	{name: "backoff"},
	{name: "backoff_max"},
}

// The bits of submitFields that DecodeSubmit looks at (fieldsIn's seen).
var (
	submitPayload = fieldBit(submitFields, "payload")
	submitNumber  = fieldBit(submitFields, "number")
)

// fieldBit is the bit fieldsIn sets for the field named name.
func fieldBit(fields []field, name string) uint64 {
	i := slices.IndexFunc(fields, func(f field) bool { return f.name == name })
	if i < 0 {
		panic("message: no field " + name)
	}
	return 1 << i
}

// DecodeSubmit parses and validates a submission: unknown keys are refused,
// a kind (or a number alone: a triple task) must be given, a payload not
// given is null, and the UUID comes back in CanonicalUUID form.
func DecodeSubmit(data []byte) (Submit, error) {
	var s Submit
	if err := unmarshal(data, &s); err != nil {
		return Submit{}, err
	}
	seen, err := fieldsIn(data, submitFields)
	if err != nil {
		return Submit{}, err
	}
	hasPayload, hasNumber := seen&submitPayload != 0, seen&submitNumber != 0
	switch {
	case hasNumber && s.Kind != "" && s.Kind != KindTriple:
		return Submit{}, fmt.Errorf("%w: number is the payload of kind %s only; kind %q takes payload", ErrInvalid, KindTriple, truncate(s.Kind))
	case s.Kind == "" && !hasNumber:
		return Submit{}, fmt.Errorf("%w: field \"kind\" is required (or \"number\" alone, for the demo kind %s)", ErrInvalid, KindTriple)
	case hasNumber && !hasPayload:
		s.Kind, s.Payload = KindTriple, strconv.AppendInt(nil, s.Number, 10)
	case len(s.Payload) == 0:
		s.Payload = json.RawMessage("null")
	}
	s.Kind, s.Payload, s.Number = NormalizeWork(s.Kind, s.Payload, s.Number)
	if err := s.Validate(); err != nil {
		return Submit{}, err
	}
	s.UUID = CanonicalUUID(s.UUID)
	return s, nil
}

// SubmitReply is the master's answer on tasks.submit.
type SubmitReply struct {
	V        int    `json:"v,omitempty"`
	UUID     string `json:"uuid,omitempty"`
	Accepted bool   `json:"accepted"`
	// Duplicate says the UUID was known: the task is not run again, State
	// says where it is (one of States), and Result is set when it is done,
	// or failed after a result with an error.
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
	if err := CheckVersion(r.V); err != nil {
		return err
	}
	if r.Accepted && r.UUID == "" {
		return fmt.Errorf("%w: an accepted task needs its uuid", ErrInvalid)
	}
	if !r.Accepted && r.Error == "" {
		return fmt.Errorf("%w: a refusal needs an error", ErrInvalid)
	}
	return nil
}

// DecodeSubmitReply parses and validates a master's answer.
func DecodeSubmitReply(data []byte) (SubmitReply, error) { return decode[SubmitReply](data, MaxSize) }
