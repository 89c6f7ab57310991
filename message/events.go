package message

import (
	"fmt"
	"time"
)

// SubjectEvents carries cluster events: who joined, who left, who leads.
// The master publishes them as it sees them; anyone may listen.
const SubjectEvents = "events"

// Event kinds.
const (
	EventPromoted = "promoted" // Node became master with Term
	EventJoined   = "joined"   // Node is a member, as the master sees it
	EventLeft     = "left"     // Node is no longer a member
)

// Event is one cluster event.
type Event struct {
	Kind string    `json:"kind"`
	Node string    `json:"node"`
	IP   string    `json:"ip,omitempty"`
	Term int64     `json:"term"`
	Time Timestamp `json:"time"`
	// By is the master that saw the event.
	By string `json:"by"`
}

// NewEvent stamps an event with the current time.
func NewEvent(kind, node, ip, by string, term int64) Event {
	return Event{Kind: kind, Node: node, IP: ip, Term: term, By: by, Time: NewTimestamp(time.Now())}
}

// Validate checks the kind and the node IDs.
func (e Event) Validate() error {
	switch e.Kind {
	case EventPromoted, EventJoined, EventLeft:
	default:
		return fmt.Errorf("%w: unknown event kind %q", ErrInvalid, e.Kind)
	}
	if err := ValidToken(e.Node); err != nil {
		return fmt.Errorf("%w: node: %w", ErrInvalid, err)
	}
	if err := ValidToken(e.By); err != nil {
		return fmt.Errorf("%w: by: %w", ErrInvalid, err)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: time is required", ErrInvalid)
	}
	return nil
}

// DecodeEvent parses and validates an event.
func DecodeEvent(data []byte) (Event, error) { return decode[Event](data, maxSmall) }
