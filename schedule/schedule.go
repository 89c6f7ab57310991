package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshpool/meshpool/message"
)

// Bounds of a schedule.
const (
	// MaxSchedules is how many schedules a cluster keeps at most: the
	// master refuses to add one more, so that the schedules it loads and
	// checks at every tick stay few.
	MaxSchedules = 1000
	MaxNameLen   = 64        // a name is 1 to MaxNameLen letters, digits, '-' and '_'
	MaxCronLen   = 256       // a cron expression's bytes at most
	MaxPayload   = 256 << 10 // a payload's bytes at most
	// MaxRequest bounds what DecodeAdd reads: a payload and the rest.
	MaxRequest = 300 << 10
)

var (
	// ErrInvalid is matched (errors.Is) by every error Validate and
	// DecodeAdd return.
	ErrInvalid = errors.New("schedule: invalid")
	// ErrBadRecord is matched (errors.Is) by every error Decode returns.
	ErrBadRecord = errors.New("schedule: bad record")
)

// Schedule is a recurring task: at each tick of Cron, the master submits a
// task of Kind with Payload (Submit). It is stored as JSON at
// keyspace.Schedule(prefix, Name).
type Schedule struct {
	// V is the format version as stored: Encode writes message.Version,
	// Decode checks it and returns 0.
	V    int    `json:"v,omitempty"`
	Name string `json:"name"`
	// Cron is when the task runs: a standard cron expression or a
	// descriptor, in UTC unless it starts with CRON_TZ=Zone (doc.go).
	Cron string `json:"cron"`
	// Kind, Payload (null when not given) and Durability (DurabilityDurable,
	// also when empty, or DurabilityNone) are those of each task submitted.
	Kind       string          `json:"kind"`
	Payload    json.RawMessage `json:"payload"`
	Durability string          `json:"durability,omitempty"`
	// Options are each task's options, but RunAt and Delay, which a
	// schedule refuses: its tasks run at their tick.
	message.Options
	// Created is when the master added the schedule: the first tick is
	// after it.
	Created time.Time `json:"created,omitzero"`
	// Last is the latest tick fired; zero before the first.
	Last time.Time `json:"last,omitzero"`
}

// ValidName checks a schedule's name: 1 to MaxNameLen of letters, digits,
// '-' and '_' (the rule of message.ValidKind), so that it can stand as the
// last segment of an etcd key.
func ValidName(s string) error {
	if s == "" {
		return errors.New("name is empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name %q is %d bytes, limit %d", truncate(s), len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %q has a character other than a letter, digit, '-' or '_' at byte %d", truncate(s), i)
		}
	}
	return nil
}

// Validate checks every field: the version, the name, a cron expression
// that parses and fires, the kind and payload (valid JSON of at most
// MaxPayload bytes, an integer for the demo kind), the durability, the
// options (message.Options.Validate, without RunAt or Delay), a creation
// time and a last tick not before it.
func (s Schedule) Validate() error {
	if p := s.problem(); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	return nil
}

// problem describes the first thing wrong with s, or returns "".
func (s Schedule) problem() string {
	if err := message.CheckVersion(s.V); err != nil {
		return err.Error()
	}
	if err := ValidName(s.Name); err != nil {
		return err.Error()
	}
	if y := s.Created.Year(); y < 2000 || y > 9999 {
		return fmt.Sprintf("created %s: want a time from year 2000 to 9999", s.Created.Format(time.RFC3339))
	}
	t, err := parse(s.Cron, s.Created)
	if err != nil {
		return err.Error()
	}
	if t.next(s.Created).IsZero() {
		return fmt.Sprintf("cron %q never fires", truncate(s.Cron))
	}
	if err := message.ValidKind(s.Kind); err != nil {
		return err.Error()
	}
	switch {
	case len(s.Payload) > MaxPayload:
		return fmt.Sprintf("payload is %d bytes, limit %d", len(s.Payload), MaxPayload)
	case len(s.Payload) == 0:
		return "payload is required (null for none)"
	case !json.Valid(s.Payload):
		return fmt.Sprintf("payload %s is not JSON", truncate(string(s.Payload)))
	}
	kind, payload, number := message.NormalizeWork(s.Kind, s.Payload, 0)
	if err := message.ValidWork(kind, payload, number); err != nil {
		return reason(err)
	}
	switch s.Durability {
	case "", message.DurabilityDurable, message.DurabilityNone:
	default:
		return fmt.Sprintf("durability %q: want %q or %q", truncate(s.Durability), message.DurabilityDurable, message.DurabilityNone)
	}
	switch {
	case !s.RunAt.IsZero():
		return "run_at: a schedule's tasks run at their tick"
	case s.Delay != 0:
		return "delay: a schedule's tasks run at their tick"
	}
	if err := s.Options.Validate(); err != nil {
		return reason(err)
	}
	if !s.Last.IsZero() && s.Last.Before(s.Created) {
		return fmt.Sprintf("last tick %s is before created %s", s.Last.Format(time.RFC3339), s.Created.Format(time.RFC3339))
	}
	return ""
}

// reason is the text of an error of package message, without its
// "message: invalid: " head: the caller says what is invalid.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), message.ErrInvalid.Error()+": ")
}

// truncate cuts s to 64 bytes, on a rune boundary, marking the cut.
func truncate(s string) string { return truncateN(s, 64) }

func truncateN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
