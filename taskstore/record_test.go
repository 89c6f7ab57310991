package taskstore_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

func TestRecordValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*taskstore.Record)
		want   string // "" = valid; else a part of the error
	}{
		{"pending", func(*taskstore.Record) {}, ""},
		{"pending not placed yet", func(r *taskstore.Record) { r.Executor, r.Attempts = "", 0 }, ""},
		{"done", func(r *taskstore.Record) { *r = done(*r) }, ""},
		{"uuid not canonical", func(r *taskstore.Record) { r.UUID = strings.ToUpper(strings.ReplaceAll(r.UUID, "-", "")) }, "uuid"},
		{"uuid empty", func(r *taskstore.Record) { r.UUID = "" }, "uuid"},
		{"executor with a dot", func(r *taskstore.Record) { r.Executor = "a.b" }, "executor"},
		{"term zero", func(r *taskstore.Record) { r.Term = 0 }, "term"},
		{"unknown state", func(r *taskstore.Record) { r.State = "started" }, "state"},
		{"running", func(r *taskstore.Record) { r.State = taskstore.Running }, ""},
		{"running nowhere", func(r *taskstore.Record) { r.State, r.Executor = taskstore.Running, "" }, "executor"},
		{"retrying with its errors", func(r *taskstore.Record) { r.State, r.Errors = taskstore.Retrying, attemptErrors(3) }, ""},
		{"too many errors kept", func(r *taskstore.Record) { r.Errors = attemptErrors(message.MaxErrorsKept + 1) }, "errors kept"},
		{"an error kept too long", func(r *taskstore.Record) {
			r.Errors = attemptErrors(1)
			r.Errors[0].Error = strings.Repeat("x", message.MaxErrorLen+1)
		}, "error kept"},
		{"failed with its error", func(r *taskstore.Record) {
			*r = done(*r)
			r.State, r.Result.Result, r.Result.Error = taskstore.Failed, nil, "boom"
		}, ""},
		{"failed without a result", func(r *taskstore.Record) { r.State = taskstore.Failed }, ""},
		{"failed with a result that is no error", func(r *taskstore.Record) { *r = done(*r); r.State = taskstore.Failed }, "error"},
		{"cancelled", func(r *taskstore.Record) { r.State = taskstore.Cancelled }, ""},
		{"cancelled with a result", func(r *taskstore.Record) { *r = done(*r); r.State = taskstore.Cancelled }, "no result"},
		{"options", func(r *taskstore.Record) {
			r.MaxAttempts, r.Priority, r.Timeout, r.Backoff, r.BackoffMax = 3, 9, message.Duration(time.Minute), message.Duration(time.Second), message.Duration(time.Hour)
		}, ""},
		{"too many attempts allowed", func(r *taskstore.Record) { r.MaxAttempts = message.MaxAttempts + 1 }, "max_attempts"},
		{"priority out of range", func(r *taskstore.Record) { r.Priority = message.MaxPriority + 1 }, "priority"},
		{"no submission time", func(r *taskstore.Record) { r.Submitted = time.Time{} }, "submitted"},
		{"negative attempts", func(r *taskstore.Record) { r.Attempts = -1 }, "attempts"},
		{"pending with a result", func(r *taskstore.Record) { r.Result = done(*r).Result }, "pending task has no result"},
		{"done without result", func(r *taskstore.Record) { r.State = taskstore.Done }, "result"},
		{"invalid result", func(r *taskstore.Record) { *r = done(*r); r.Result.Term = 0 }, "result"},
		{"result of another task", func(r *taskstore.Record) { *r = done(*r); r.Result.UUID = pending(1).UUID }, "another"},
		{"result with another number", func(r *taskstore.Record) { *r = done(*r); r.Result.Number++ }, "number"},
		{"a newer format version", func(r *taskstore.Record) { r.V = 2 }, "version 2, this node reads up to 1"},
		{"no kind", func(r *taskstore.Record) { r.Kind = "" }, "kind is empty"},
		{"a kind with a dot", func(r *taskstore.Record) { r.Kind = "a.b" }, "kind"},
		{"no payload", func(r *taskstore.Record) { r.Payload = nil }, "payload is required"},
		{"a demo payload that is not its number", func(r *taskstore.Record) { r.Payload = json.RawMessage("41") }, "number 42 is not the payload 41"},
		{"a result of another kind", func(r *taskstore.Record) { *r = done(*r); r.Result.Kind = "other" }, "kind"},
		{"another kind with a payload", func(r *taskstore.Record) { r.Kind, r.Number, r.Payload = "resize", 0, json.RawMessage(`{"w":1}`) }, ""},
		{"a submitter", func(r *taskstore.Record) { r.Submitter = "ci-bot_2" }, ""},
		{"a submitter known by its nkey", func(r *taskstore.Record) { r.Submitter = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4" }, ""},
		{"the master's own task", func(r *taskstore.Record) { r.Submitter = message.MasterSubmitter }, ""},
		{"a submitter that is not one subject token", func(r *taskstore.Record) { r.Submitter = "a.b" }, "submitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pending(42)
			tt.change(&r)
			err := r.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate accepted %+v", r)
			case tt.want != "" && (!errors.Is(err, taskstore.ErrInvalidRecord) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v; want ErrInvalidRecord mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	r := done(pending(7))
	good, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	key := keyspace.Task(prefix, r.UUID)
	t.Run("round trip", func(t *testing.T) {
		got, err := taskstore.Decode(key, good)
		if err != nil {
			t.Fatal(err)
		}
		if !same(t, got, r) {
			t.Fatalf("Decode = %+v, want %+v", got, r)
		}
	})
	t.Run("a submitter", func(t *testing.T) {
		r := pending(3)
		r.Submitter = "alice"
		value, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(value), `"submitter":"alice"`) {
			t.Fatalf("record %s does not name its submitter", value)
		}
		got, err := taskstore.Decode(keyspace.Task(prefix, r.UUID), value)
		if err != nil || got.Submitter != "alice" {
			t.Fatalf("Decode = %+v, %v; want submitter alice", got, err)
		}
	})
	t.Run("a record written before kinds", func(t *testing.T) {
		id := pending(1).UUID
		old := `{"uuid":"` + id + `","number":7,"executor":"node-a-1234abcd","term":1,"state":"done","submitted":"2025-03-01T12:00:00.123Z","attempts":1,` +
			`"result":{"uuid":"` + id + `","executor":"node-a-1234abcd","number":7,"result":21,"start":"2025-03-01T12:00:01.000Z","finish":"2025-03-01T12:00:02.000Z","term":1,"attempt":1}}`
		got, err := taskstore.Decode(keyspace.Task(prefix, id), []byte(old))
		if err != nil || got.Kind != message.KindTriple || string(got.Payload) != "7" || got.Number != 7 ||
			got.Result.Kind != message.KindTriple || string(got.Result.Result) != "21" || got.Submitter != "" {
			t.Fatalf("Decode = %+v, %v; want a triple task of 7 with its result 21, of the anonymous submitter", got, err)
		}
	})
	invalid := r
	invalid.Term = 0
	bad, err := json.Marshal(invalid)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, value string
	}{
		{"not JSON", key, "{"},
		{"wrong type", key, `{"uuid": 5}`},
		{"empty", key, ""},
		{"invalid record", key, string(bad)},
		{"uuid not the key's", keyspace.Task(prefix, pending(1).UUID), string(good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := taskstore.Decode(tt.key, []byte(tt.value))
			if err == nil {
				t.Fatalf("Decode accepted %q", tt.value)
			}
			if !errors.Is(err, taskstore.ErrBadRecord) || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("Decode: %v; want ErrBadRecord naming %s", err, tt.key)
			}
			if !reflect.DeepEqual(got, taskstore.Record{}) {
				t.Fatalf("Decode returned %+v with its error", got)
			}
		})
	}
}

// attemptErrors returns n errors of attempts 1 to n.
func attemptErrors(n int) []message.AttemptError {
	var errs []message.AttemptError
	for i := 1; i <= n; i++ {
		errs = append(errs, message.AttemptError{Attempt: i, Executor: "node-a-1234abcd", Error: "boom " + strings.Repeat("é", i),
			At: message.NewTimestamp(time.Date(2025, 3, 1, 12, 0, i, 0, time.UTC))})
	}
	return errs
}
