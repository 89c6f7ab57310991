package schedule_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*schedule.Schedule)
		want   string // in the error; "" for none
	}{
		{"valid", func(*schedule.Schedule) {}, ""},
		{"descriptor", func(s *schedule.Schedule) { s.Cron = "@hourly" }, ""},
		{"every", func(s *schedule.Schedule) { s.Cron = "@every 5m" }, ""},
		{"zone", func(s *schedule.Schedule) { s.Cron = "CRON_TZ=Europe/Paris 0 9 * * 1-5" }, ""},
		{"TZ", func(s *schedule.Schedule) { s.Cron = "TZ=UTC @daily" }, ""},
		{"durability none", func(s *schedule.Schedule) { s.Durability = message.DurabilityNone }, ""},
		{"durability empty", func(s *schedule.Schedule) { s.Durability = "" }, ""},
		{"triple", func(s *schedule.Schedule) { s.Kind, s.Payload = message.KindTriple, json.RawMessage("7") }, ""},
		{"options", func(s *schedule.Schedule) {
			s.Options = message.Options{Timeout: message.Duration(time.Minute), MaxAttempts: 3, Priority: 9, Backoff: message.Duration(time.Second), BackoffMax: message.Duration(time.Hour)}
		}, ""},
		{"last", func(s *schedule.Schedule) { s.Last = created.Add(time.Hour) }, ""},
		{"version", func(s *schedule.Schedule) { s.V = message.Version + 1 }, "format version not supported"},
		{"name empty", func(s *schedule.Schedule) { s.Name = "" }, "schedule: invalid: name is empty"},
		{"name slash", func(s *schedule.Schedule) { s.Name = "a/b" }, `name "a/b" has a character other than a letter, digit, '-' or '_' at byte 1`},
		{"name long", func(s *schedule.Schedule) { s.Name = strings.Repeat("n", 65) }, "is 65 bytes, limit 64"},
		{"cron empty", func(s *schedule.Schedule) { s.Cron = "" }, "cron is empty"},
		{"cron long", func(s *schedule.Schedule) { s.Cron = strings.Repeat("*", 257) }, "is 257 bytes, limit 256"},
		{"cron fields", func(s *schedule.Schedule) { s.Cron = "* * *" }, `cron "* * *": expected exactly 5 fields, found 3`},
		{"cron seconds", func(s *schedule.Schedule) { s.Cron = "0 * * * * *" }, "expected exactly 5 fields, found 6"},
		{"cron range", func(s *schedule.Schedule) { s.Cron = "61 * * * *" }, "above maximum"},
		{"cron descriptor", func(s *schedule.Schedule) { s.Cron = "@fortnightly" }, "unrecognized descriptor"},
		{"cron never", func(s *schedule.Schedule) { s.Cron = "0 0 30 2 *" }, `cron "0 0 30 2 *" never fires`},
		{"every short", func(s *schedule.Schedule) { s.Cron = "@every 500ms" }, "@every takes whole seconds, at least 1s"},
		{"every fraction", func(s *schedule.Schedule) { s.Cron = "@every 1.5s" }, "@every takes whole seconds"},
		{"every negative", func(s *schedule.Schedule) { s.Cron = "@every -1m" }, "@every takes whole seconds"},
		{"every garbage", func(s *schedule.Schedule) { s.Cron = "@every soon" }, `time: invalid duration "soon"`},
		// robfig/cron v3.0.1 panics on this one.
		{"zone alone", func(s *schedule.Schedule) { s.Cron = "CRON_TZ=UTC" }, "a zone needs an expression after it"},
		{"zone unknown", func(s *schedule.Schedule) { s.Cron = "CRON_TZ=Mars/Olympus * * * * *" }, `zone "Mars/Olympus"`},
		{"zone local", func(s *schedule.Schedule) { s.Cron = "TZ=Local * * * * *" }, "zone Local differs from master to master"},
		{"zone empty", func(s *schedule.Schedule) { s.Cron = "TZ= * * * * *" }, "the zone is empty"},
		{"zone twice", func(s *schedule.Schedule) { s.Cron = "TZ=UTC TZ=UTC" }, "one zone at most"},
		{"kind empty", func(s *schedule.Schedule) { s.Kind = "" }, "schedule: invalid: kind is empty"},
		{"kind dot", func(s *schedule.Schedule) { s.Kind = "a.b" }, "has a character other than"},
		{"payload missing", func(s *schedule.Schedule) { s.Payload = nil }, "payload is required (null for none)"},
		{"payload not JSON", func(s *schedule.Schedule) { s.Payload = json.RawMessage("{") }, "payload { is not JSON"},
		{"payload large", func(s *schedule.Schedule) {
			s.Payload = json.RawMessage(`"` + strings.Repeat("x", schedule.MaxPayload) + `"`)
		}, "payload is 262146 bytes, limit 262144"},
		{"triple payload", func(s *schedule.Schedule) { s.Kind = message.KindTriple }, "a triple payload is an integer"},
		{"durability", func(s *schedule.Schedule) { s.Durability = "forever" }, `durability "forever": want "durable" or "none"`},
		{"run_at", func(s *schedule.Schedule) { s.RunAt = message.NewTimestamp(created) }, "run_at: a schedule's tasks run at their tick"},
		{"delay", func(s *schedule.Schedule) { s.Delay = message.Duration(time.Minute) }, "delay: a schedule's tasks run at their tick"},
		{"priority", func(s *schedule.Schedule) { s.Priority = 10 }, "schedule: invalid: priority 10: want 0 to 9"},
		{"timeout", func(s *schedule.Schedule) { s.Timeout = -1 }, "timeout"},
		{"created missing", func(s *schedule.Schedule) { s.Created = time.Time{} }, "created 0001-01-01T00:00:00Z: want a time from year 2000 to 9999"},
		{"last before created", func(s *schedule.Schedule) { s.Last = created.Add(-time.Minute) }, "last tick 2025-03-01T11:59:30Z is before created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := valid("0 3 * * *")
			tc.change(&s)
			err := s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			case !errors.Is(err, schedule.ErrInvalid):
				t.Fatalf("%v does not match ErrInvalid", err)
			}
		})
	}
}

func TestDecodeAdd(t *testing.T) {
	now := at(t, "2025-06-01T10:00:00.5Z")
	for _, tc := range []struct {
		name string
		data string
		want string // in the error; "" for none
	}{
		{"minimal", `{"name":"n","cron":"@hourly","kind":"k"}`, ""},
		{"all", `{"v":1,"name":"n","cron":"*/5 * * * *","kind":"k","payload":[1,2],"durability":"none",
			"timeout":"30s","max_attempts":3,"priority":2,"backoff":"1s","backoff_max":"1m"}`, ""},
		{"payload null", `{"name":"n","cron":"@hourly","kind":"k","payload":null}`, ""},
		{"no name", `{"cron":"@hourly","kind":"k"}`, `field "name" is required`},
		{"no cron", `{"name":"n","kind":"k"}`, `field "cron" is required`},
		{"no kind", `{"name":"n","cron":"@hourly"}`, `field "kind" is required`},
		{"unknown", `{"name":"n","cron":"@hourly","kind":"k","crontab":"x"}`, `json: unknown field "crontab"`},
		{"created", `{"name":"n","cron":"@hourly","kind":"k","created":"2025-01-01T00:00:00Z"}`, "created and last are the master's to set"},
		{"last", `{"name":"n","cron":"@hourly","kind":"k","last":"2025-01-01T00:00:00Z"}`, "created and last are the master's to set"},
		{"delay", `{"name":"n","cron":"@hourly","kind":"k","delay":"1m"}`, "delay: a schedule's tasks run at their tick"},
		{"run_at", `{"name":"n","cron":"@hourly","kind":"k","run_at":"2025-07-01T00:00:00Z"}`, "run_at: a schedule's tasks run at their tick"},
		{"bad cron", `{"name":"n","cron":"every day","kind":"k"}`, "expected exactly 5 fields"},
		{"wrong type", `{"name":7,"cron":"@hourly","kind":"k"}`, "cannot unmarshal number"},
		{"not an object", `[]`, "cannot unmarshal array"},
		{"null", `null`, `field "name" is required`},
		{"trailing", `{"name":"n","cron":"@hourly","kind":"k"} {}`, "data after the request's object"},
		{"malformed", `{"name":`, "unexpected EOF"},
		{"too large", `{"name":"n","cron":"@hourly","kind":"k","payload":"` + strings.Repeat("x", schedule.MaxRequest) + `"}`, "limit 307200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := schedule.DecodeAdd([]byte(tc.data), now)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, schedule.ErrInvalid):
				t.Fatalf("%v does not match ErrInvalid", err)
			case tc.want != "":
				return
			}
			if !s.Created.Equal(now) || !s.Last.IsZero() || s.V != 0 {
				t.Errorf("created %s, last %s, v %d; want created now, no last, v 0", s.Created, s.Last, s.V)
			}
			if len(s.Payload) == 0 || s.Durability == "" {
				t.Errorf("payload %q, durability %q: want both filled", s.Payload, s.Durability)
			}
		})
	}
}

// What DecodeAdd fills in when the client does not say.
func TestDecodeAddDefaults(t *testing.T) {
	s, err := schedule.DecodeAdd([]byte(`{"name":"n","cron":"@hourly","kind":"k"}`), created)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Payload) != "null" || s.Durability != message.DurabilityDurable {
		t.Fatalf("payload %s, durability %q; want null, durable", s.Payload, s.Durability)
	}
}
