package message

import (
	"encoding/json"
	"fmt"
	"time"
)

// The operations on tasks, as NATS requests any client can make; the
// master answers. Each request is a strict JSON object (unknown keys are
// refused), each answer carries "error" when it failed.
const (
	SubjectGet    = "tasks.get"    // GetRequest → TaskInfo
	SubjectList   = "tasks.list"   // ListRequest → ListReply
	SubjectCancel = "tasks.cancel" // CancelRequest → TaskInfo
	SubjectRetry  = "tasks.retry"  // RetryRequest → RetryReply
)

// Schedules of recurring tasks (package schedule), also answered by the master.
const (
	SubjectScheduleAdd    = "tasks.schedule.add"    // schedule.Schedule → ScheduleReply
	SubjectScheduleRemove = "tasks.schedule.remove" // ScheduleRequest → ScheduleReply
	SubjectScheduleList   = "tasks.schedule.list"   // ScheduleRequest (empty) → ScheduleReply
)

// CancelSubject is where the master tells worker nodeID to stop a task it
// runs: tasks.<nodeID>.cancel. Only nodes may publish there.
func CancelSubject(nodeID string) string { return SubjectTaskPrefix + nodeID + ".cancel" }

// Cancel is the master's order to a worker to stop running a task: its
// handler's context is cancelled. The worker acks it.
type Cancel struct {
	V        int    `json:"v,omitempty"`
	UUID     string `json:"uuid"`
	Executor string `json:"executor"`
	Term     int64  `json:"term"`
	// Attempt is the attempt cancelled: a later one of the same task (a
	// retry, whose attempts go on counting) is not.
	Attempt int64 `json:"attempt"`
}

// Validate checks every field.
func (c Cancel) Validate() error {
	if err := CheckVersion(c.V); err != nil {
		return err
	}
	if err := validUUID(c.UUID); err != nil {
		return err
	}
	if err := ValidToken(c.Executor); err != nil {
		return fmt.Errorf("%w: executor: %w", ErrInvalid, err)
	}
	if c.Term <= 0 {
		return fmt.Errorf("%w: term must be positive, got %d", ErrInvalid, c.Term)
	}
	if c.Attempt < 0 {
		return fmt.Errorf("%w: attempt must not be negative, got %d", ErrInvalid, c.Attempt)
	}
	return nil
}

// DecodeCancel parses and validates a cancel order.
func DecodeCancel(data []byte) (Cancel, error) { return decode[Cancel](data, maxSmall) }

// GetRequest asks for one task.
type GetRequest struct {
	UUID string `json:"uuid"`
}

// Validate checks the uuid.
func (r GetRequest) Validate() error { return validUUID(r.UUID) }

// CancelRequest asks to cancel one task.
type CancelRequest struct {
	UUID string `json:"uuid"`
}

// Validate checks the uuid.
func (r CancelRequest) Validate() error { return validUUID(r.UUID) }

// Listing bounds.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListRequest asks for the tasks in a state and of a kind (each optional),
// newest first, at most Limit (DefaultListLimit when 0, MaxListLimit at most).
type ListRequest struct {
	State string `json:"state,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// Validate checks the state, the kind and the limit.
func (r ListRequest) Validate() error {
	if r.State != "" {
		if err := ValidState(r.State); err != nil {
			return err
		}
	}
	if r.Kind != "" {
		if err := ValidKind(r.Kind); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if r.Limit < 0 || r.Limit > MaxListLimit {
		return fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalid, r.Limit, MaxListLimit)
	}
	return nil
}

// RetryRequest asks to run failed or cancelled tasks again with fresh
// attempts: one (UUID), or every one in State (failed or cancelled), of
// Kind when given, up to Limit.
type RetryRequest struct {
	UUID  string `json:"uuid,omitempty"`
	State string `json:"state,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// Validate checks that the request names one task or a state to retry.
func (r RetryRequest) Validate() error {
	switch {
	case r.UUID != "" && (r.State != "" || r.Kind != ""):
		return fmt.Errorf("%w: give a uuid, or a state (and a kind), not both", ErrInvalid)
	case r.UUID != "":
		return validUUID(r.UUID)
	case r.State != StateFailed && r.State != StateCancelled:
		return fmt.Errorf("%w: retry takes a uuid, or state %q or %q", ErrInvalid, StateFailed, StateCancelled)
	}
	return ListRequest{State: r.State, Kind: r.Kind, Limit: r.Limit}.Validate()
}

// AttemptError is one failed attempt of a task.
type AttemptError struct {
	Attempt  int       `json:"attempt"`
	Executor string    `json:"executor,omitempty"`
	Error    string    `json:"error"`
	At       Timestamp `json:"at"`
}

// TaskInfo is what a client is told of one task: its state, its attempts
// and their errors, its result and its times.
type TaskInfo struct {
	V           int             `json:"v,omitempty"`
	UUID        string          `json:"uuid"`
	Kind        string          `json:"kind,omitempty"`
	State       string          `json:"state,omitempty"`
	Durability  string          `json:"durability,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Priority    int             `json:"priority"`
	Attempts    int             `json:"attempts"` // attempts started so far: the current or last one's number
	MaxAttempts int             `json:"max_attempts,omitempty"`
	Timeout     Duration        `json:"timeout,omitzero"`
	Executor    string          `json:"executor,omitempty"` // the worker of the current or last attempt
	Errors      []AttemptError  `json:"errors,omitempty"`   // the last MaxErrorsKept, oldest first
	Result      *Result         `json:"result,omitempty"`
	Submitted   *Timestamp      `json:"submitted,omitempty"`
	Started     *Timestamp      `json:"started,omitempty"`  // the current or last attempt's start
	Finished    *Timestamp      `json:"finished,omitempty"` // when it became done, failed or cancelled
	NextAt      *Timestamp      `json:"next_at,omitempty"`  // pending or retrying: not started before then
	Error       string          `json:"error,omitempty"`    // why the request failed (no such task, …)
	// Temporary marks an error after which the same request may succeed
	// (no master, etcd unreachable).
	Temporary bool `json:"temporary,omitempty"`
}

// ListReply answers a ListRequest.
type ListReply struct {
	V     int        `json:"v,omitempty"`
	Tasks []TaskInfo `json:"tasks"`
	// More says there are more tasks than the limit.
	More      bool   `json:"more,omitempty"`
	Error     string `json:"error,omitempty"`
	Temporary bool   `json:"temporary,omitempty"`
}

// RetryReply answers a RetryRequest: the tasks made pending again.
type RetryReply struct {
	V         int      `json:"v,omitempty"`
	Retried   []string `json:"retried"`
	Error     string   `json:"error,omitempty"`
	Temporary bool     `json:"temporary,omitempty"`
}

// Fields of the requests, for their strict decoders.
var (
	getFields    = []field{{name: "uuid", required: true}}
	listFields   = []field{{name: "state"}, {name: "kind"}, {name: "limit"}}
	retryFields  = []field{{name: "uuid"}, {name: "state"}, {name: "kind"}, {name: "limit"}}
	cancelFields = getFields
)

// decodeStrict parses data into a T, refusing unknown keys, and validates it.
func decodeStrict[T validator](data []byte, fields []field) (T, error) {
	var v, zero T
	if len(data) > maxSmall {
		return zero, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), maxSmall)
	}
	if err := unmarshalMax(data, &v, maxSmall); err != nil {
		return zero, err
	}
	if _, err := fieldsIn(data, fields); err != nil {
		return zero, err
	}
	if err := v.Validate(); err != nil {
		return zero, err
	}
	return v, nil
}

// DecodeGet parses a get request; the uuid comes back in canonical form.
func DecodeGet(data []byte) (GetRequest, error) {
	r, err := decodeStrict[GetRequest](data, getFields)
	r.UUID = CanonicalUUID(r.UUID)
	return r, err
}

// DecodeCancelRequest parses a cancel request.
func DecodeCancelRequest(data []byte) (CancelRequest, error) {
	r, err := decodeStrict[CancelRequest](data, cancelFields)
	r.UUID = CanonicalUUID(r.UUID)
	return r, err
}

// DecodeList parses a list request.
func DecodeList(data []byte) (ListRequest, error) { return decodeStrict[ListRequest](data, listFields) }

// DecodeRetry parses a retry request.
func DecodeRetry(data []byte) (RetryRequest, error) {
	r, err := decodeStrict[RetryRequest](data, retryFields)
	r.UUID = CanonicalUUID(r.UUID)
	return r, err
}

// Stamp returns a pointer to t as a Timestamp, nil for the zero time.
func Stamp(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	s := NewTimestamp(t)
	return &s
}
