package message

import "fmt"

// MaxNumber bounds a submitted number so that number*3 cannot overflow.
const MaxNumber = 1 << 60

// Submit is a client's request on tasks.submit.
type Submit struct {
	// UUID is optional: the idempotency key. A task submitted again with
	// the same UUID is not run twice.
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
	if s.Number < -MaxNumber || s.Number > MaxNumber {
		return fmt.Errorf("%w: number %d out of range ±2^60", ErrInvalid, s.Number)
	}
	return nil
}

// DecodeSubmit parses and validates a submission.
func DecodeSubmit(data []byte) (Submit, error) { return decode[Submit](data) }

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
