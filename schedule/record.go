package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meshpool/meshpool/message"
)

// DecodeAdd parses and validates a client's request to add a schedule, a
// Schedule's JSON without created and last (the master sets them): at most
// MaxRequest bytes, one object, no unknown key, name, cron and kind given.
// It returns the schedule created at now, its payload null when not given
// and its durability DurabilityDurable when not given. Every error matches
// ErrInvalid.
func DecodeAdd(data []byte, now time.Time) (Schedule, error) {
	if len(data) > MaxRequest {
		return Schedule{}, fmt.Errorf("%w: request is %d bytes, limit %d", ErrInvalid, len(data), MaxRequest)
	}
	var s Schedule
	if err := strictJSON(data, &s); err != nil {
		return Schedule{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, f := range []struct{ name, value string }{{"name", s.Name}, {"cron", s.Cron}, {"kind", s.Kind}} {
		if f.value == "" {
			return Schedule{}, fmt.Errorf("%w: field %q is required", ErrInvalid, f.name)
		}
	}
	if !s.Created.IsZero() || !s.Last.IsZero() {
		return Schedule{}, fmt.Errorf("%w: created and last are the master's to set", ErrInvalid)
	}
	if len(s.Payload) == 0 {
		s.Payload = json.RawMessage("null")
	}
	if s.Durability == "" {
		s.Durability = message.DurabilityDurable
	}
	s.Created = now.Round(0) // no monotonic reading: s is stored and compared
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	s.V = 0
	return s, nil
}

// Encode returns the schedule's record, the value stored at
// keyspace.Schedule(prefix, s.Name): its JSON with "v" message.Version.
// It does not validate s.
func (s Schedule) Encode() (string, error) {
	s.V = message.Version
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("schedule: cannot encode %s: %w", truncate(s.Name), err)
	}
	return string(b), nil
}

// Decode parses the value stored at key and checks it: the schedule must
// be valid and its name must be the last segment of key. Unknown keys are
// ignored, for a record a newer master wrote. Every error names key and
// matches ErrBadRecord.
func Decode(key string, value []byte) (Schedule, error) {
	var s Schedule
	if err := json.Unmarshal(value, &s); err != nil {
		return Schedule{}, fmt.Errorf("%w at %s: %w", ErrBadRecord, truncateN(key, 256), err)
	}
	if p := s.problem(); p != "" {
		return Schedule{}, fmt.Errorf("%w at %s: %s", ErrBadRecord, truncateN(key, 256), p)
	}
	if !strings.HasSuffix(key, "/"+s.Name) {
		return Schedule{}, fmt.Errorf("%w at %s: name %s does not match the key", ErrBadRecord, truncateN(key, 256), s.Name)
	}
	s.V = 0
	return s, nil
}

// strictJSON decodes one JSON object into v, refusing unknown keys and
// anything after the object.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the request's object")
	}
	return nil
}
