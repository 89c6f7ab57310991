package schedule_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

// created is when the schedules of the tests were added.
var created = time.Date(2025, 3, 1, 12, 0, 30, 123e6, time.UTC)

// valid returns a valid schedule firing at cron.
func valid(cron string) schedule.Schedule {
	return schedule.Schedule{
		Name:       "nightly-report",
		Cron:       cron,
		Kind:       "report",
		Payload:    json.RawMessage(`{"to":"ops"}`),
		Durability: message.DurabilityDurable,
		Created:    created,
	}
}

// at parses an RFC 3339 time.
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// same compares schedules as they are stored, so that time zones and
// monotonic clock readings do not matter.
func same(t testing.TB, a, b schedule.Schedule) bool {
	t.Helper()
	ja, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	jb, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return ja == jb
}
