package schedule_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

func TestEncodeDecode(t *testing.T) {
	s := valid("CRON_TZ=Europe/Paris 0 9 * * 1-5")
	s.Options = message.Options{Timeout: message.Duration(90 * time.Second), MaxAttempts: 4, Priority: 1, Backoff: message.Duration(time.Second), BackoffMax: message.Duration(time.Minute)}
	s.Last = at(t, "2025-03-03T08:00:00Z")
	value, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"name":"nightly-report","cron":"CRON_TZ=Europe/Paris 0 9 * * 1-5","kind":"report","payload":{"to":"ops"},"durability":"durable",` +
		`"timeout":"1m30s","max_attempts":4,"priority":1,"backoff":"1s","backoff_max":"1m0s","created":"2025-03-01T12:00:30.123Z","last":"2025-03-03T08:00:00Z"}`
	if value != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", value, want)
	}
	got, err := schedule.Decode(keyspace.Schedule("/meshpool", s.Name), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	if got.V != 0 || !same(t, got, s) {
		t.Fatalf("Decode = %+v, want %+v", got, s)
	}
	// A newer master's keys are ignored.
	newer := strings.Replace(value, `"v":1,`, `"v":1,"jitter":"5s",`, 1)
	if _, err := schedule.Decode(keyspace.Schedule("/meshpool", s.Name), []byte(newer)); err != nil {
		t.Fatalf("an unknown key: %v", err)
	}
}

func TestDecodeBad(t *testing.T) {
	key := keyspace.Schedule("/meshpool", "nightly-report")
	good, err := valid("@daily").Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"not JSON", key, "{", "unexpected end of JSON input"},
		{"wrong type", key, `{"name":1}`, "cannot unmarshal number"},
		{"invalid", key, strings.Replace(good, `"@daily"`, `"@often"`, 1), "unrecognized descriptor: @often"},
		{"newer version", key, strings.Replace(good, `"v":1`, `"v":2`, 1), "version 2, this node reads up to 1"},
		{"no created", key, `{"name":"nightly-report","cron":"@daily","kind":"k","payload":null}`, "created 0001-01-01T00:00:00Z"},
		{"name not the key's", keyspace.Schedule("/meshpool", "other"), good, "name nightly-report does not match the key"},
		{"name a suffix of the key's", keyspace.Schedule("/meshpool", "x-nightly-report"), good, "does not match the key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schedule.Decode(tc.key, []byte(tc.value))
			if !errors.Is(err, schedule.ErrBadRecord) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("Decode: %v; want an ErrBadRecord naming %s and saying %q", err, tc.key, tc.want)
			}
		})
	}
}

// What DecodeAdd returns, once stored and read back, is what was added.
func TestDecodeAddThenStore(t *testing.T) {
	s, err := schedule.DecodeAdd([]byte(`{"name":"n","cron":"*/5 * * * *","kind":"k","payload":{"a":[1, 2]},"priority":3}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	value, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := schedule.Decode(keyspace.Schedule("/meshpool", "n"), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	if !same(t, got, s) || !got.Created.Equal(s.Created) {
		t.Fatalf("stored and read back: %+v, want %+v", got, s)
	}
	var payload any
	if err := json.Unmarshal(got.Payload, &payload); err != nil {
		t.Fatal(err)
	}
}
