package schedule

import (
	"encoding/json"
	"fmt"
	"time"
)

// The NATS API of schedules (message.SubjectScheduleAdd, …Remove, …List),
// answered by the master: add takes a Schedule as DecodeAdd reads it;
// remove takes a Request naming the schedule; list takes an empty Request.
// Every answer is a Reply.

// Request names a schedule to remove; list takes it empty.
type Request struct {
	Name string `json:"name,omitempty"`
}

// DecodeRequest parses a remove (name required) or list (name empty)
// request; unknown keys are refused.
func DecodeRequest(data []byte, needName bool) (Request, error) {
	var r Request
	if len(data) > 4096 {
		return r, fmt.Errorf("%w: request is %d bytes, limit 4096", ErrInvalid, len(data))
	}
	if len(data) > 0 {
		if err := strictJSON(data, &r); err != nil {
			return Request{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	switch {
	case needName:
		if err := ValidName(r.Name); err != nil {
			return Request{}, err
		}
	case r.Name != "":
		return Request{}, fmt.Errorf("%w: list takes no name", ErrInvalid)
	}
	return r, nil
}

// Entry is a schedule as listed: its definition, and when it fires next.
type Entry struct {
	Schedule
	Next time.Time `json:"next,omitzero"`
}

// Reply answers every schedule request: the schedules added, removed or
// listed, or why not.
type Reply struct {
	Schedules []Entry `json:"schedules"`
	Error     string  `json:"error,omitempty"`
	// Temporary marks an error after which the same request may succeed.
	Temporary bool `json:"temporary,omitempty"`
}

// DecodeReply parses a master's answer.
func DecodeReply(data []byte) (Reply, error) {
	var r Reply
	if len(data) > 4<<20 {
		return r, fmt.Errorf("%w: answer is %d bytes", ErrInvalid, len(data))
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Reply{}, fmt.Errorf("%w: answer: %w", ErrInvalid, err)
	}
	return r, nil
}
