package schedule_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

func TestTaskUUID(t *testing.T) {
	tick, created := at(t, "2025-03-01T13:00:00Z"), at(t, "2025-02-01T00:00:00Z")
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	id := schedule.TaskUUID("nightly", created, tick)
	if u, err := uuid.Parse(id); err != nil || u.Version() != 5 || u.String() != id {
		t.Fatalf("TaskUUID = %q: want a canonical version 5 UUID (%v)", id, err)
	}
	if want := schedule.TaskUUID("nightly", created, tick); id != want {
		t.Fatalf("TaskUUID is not deterministic: %s, then %s", id, want)
	}
	if same := schedule.TaskUUID("nightly", created, tick.In(paris)); same != id {
		t.Errorf("the same tick in another location: %s, want %s", same, id)
	}
	for _, other := range []struct{ name, tick string }{
		{"nightly", "2025-03-01T14:00:00Z"},
		{"nightly", "2025-03-01T13:00:00.000000001Z"},
		{"nightly2", "2025-03-01T13:00:00Z"},
		{"nightl", "2025-03-01T13:00:00Z"},
	} {
		if got := schedule.TaskUUID(other.name, created, at(t, other.tick)); got == id {
			t.Errorf("TaskUUID(%s, %s) = %s, the same as another tick's", other.name, other.tick, got)
		}
	}
	// A schedule removed and added again under its name is another
	// schedule: its ticks are other tasks.
	if got := schedule.TaskUUID("nightly", created.Add(time.Second), tick); got == id {
		t.Errorf("TaskUUID of a schedule created at another time = %s, the same", got)
	}
}

// The TaskUUID of a tick is part of the contract between masters of
// different versions: it must never change.
func TestTaskUUIDPinned(t *testing.T) {
	// uuid5(b35f4105-5357-4ad8-b4ab-a94bba8c584b, "nightly\x002025-02-01T00:00:00Z\x002025-03-01T13:00:00Z")
	const want = "65a9748c-4cec-5675-871f-5c6c9d9b4e2d"
	if got := schedule.TaskUUID("nightly", at(t, "2025-02-01T00:00:00Z"), at(t, "2025-03-01T13:00:00Z")); got != want {
		t.Fatalf("TaskUUID = %s, was %s", got, want)
	}
}

func TestSubmit(t *testing.T) {
	s := valid("@hourly")
	s.Options = message.Options{Timeout: message.Duration(time.Minute), MaxAttempts: 3, Priority: 2}
	tick := at(t, "2025-03-01T13:00:00Z")
	sub := s.Submit(tick)
	want := message.Submit{
		UUID:       schedule.TaskUUID(s.Name, s.Created, tick),
		Kind:       s.Kind,
		Payload:    s.Payload,
		Durability: s.Durability,
		Options:    s.Options,
	}
	if got, _ := json.Marshal(sub); string(got) != string(mustJSON(t, want)) {
		t.Fatalf("Submit = %s, want %s", got, mustJSON(t, want))
	}
	if err := sub.Validate(); err != nil {
		t.Fatalf("Submit's submission is not valid: %v", err)
	}

	triple := valid("@hourly")
	triple.Kind, triple.Payload = message.KindTriple, json.RawMessage("14")
	if sub := triple.Submit(tick); sub.Number != 14 || sub.Validate() != nil {
		t.Fatalf("a triple schedule's submission: number %d, %v; want 14, valid", sub.Number, sub.Validate())
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
