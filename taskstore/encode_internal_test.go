package taskstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

// encode must write exactly what json.Marshal writes, and fail where it fails.
func TestEncodeIsJSONMarshal(t *testing.T) {
	stamp := message.Timestamp{Time: time.Date(2026, 11, 27, 6, 40, 22, 123000000, time.UTC)}
	res := &message.Result{V: 1, UUID: "u", Executor: `e"<x>`, Kind: "triple", Number: 7, Result: json.RawMessage("21"), Start: stamp, Finish: stamp, Term: 3}
	times := []time.Time{{}, time.Date(2026, 11, 27, 6, 40, 22, 123456789, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 5*3600+45*60)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 25*3600))}
	for _, s := range []string{"", "11111111-2222-3333-4444-555555555555", "é\u2028\x00<&>\xff"} {
		for _, ts := range times {
			for _, r := range []Record{
				{V: 1, UUID: s, Kind: "triple", Payload: json.RawMessage("-5"), Number: -5, Executor: s, Term: 9, State: Pending, Submitted: ts, Attempts: 2},
				{V: 1, UUID: s, Kind: "k", Payload: json.RawMessage(`{"a":[1,"x"]}`), State: Done, Submitted: ts, Result: res, Submitter: s},
				{V: 1, Payload: json.RawMessage("null")},
				{V: 1, UUID: s, Kind: "k", Payload: json.RawMessage("1"), State: Retrying, Submitted: ts, Attempts: 3,
					MaxAttempts: 5, Priority: 7, Timeout: message.Duration(90 * time.Second), Backoff: message.Duration(time.Second),
					BackoffMax: message.Duration(time.Hour + 500*time.Millisecond), NotBefore: ts, Started: ts, Finished: ts,
					Errors: []message.AttemptError{{Attempt: 1, Executor: s, Error: s + "!", At: stamp}, {Attempt: 2, Error: "x", At: message.Timestamp{Time: ts}}}},
			} {
				want, wantErr := json.Marshal(r)
				got, err := r.encode()
				if (err != nil) != (wantErr != nil) {
					t.Fatalf("encode(%+v): error %v, json.Marshal error %v", r, err, wantErr)
				}
				if err == nil && got != string(want) {
					t.Fatalf("encode(%+v)\n got %s\nwant %s", r, got, want)
				}
			}
		}
	}
}

// BenchmarkRecordEncode measures a demo task's two records as the master
// writes them (accepted, then done): their bytes in etcd (the bytes
// metric, the key aside) and what encoding one costs.
func BenchmarkRecordEncode(b *testing.B) {
	now := time.Now().UTC()
	stamp := message.NewTimestamp(now)
	const id = "11111111-2222-4333-8444-555555555555"
	live := Record{UUID: id, Kind: message.KindTriple, Payload: json.RawMessage("42"), Number: 42, Executor: "node-a-1234abcd", Term: 7,
		State: Running, Submitted: now, Attempts: 1, MaxAttempts: 5, Started: now}
	done := live
	done.State, done.Finished = Done, now
	done.Result = &message.Result{UUID: id, Executor: "node-a-1234abcd", Kind: message.KindTriple, Number: 42, Result: json.RawMessage("126"),
		Start: stamp, Finish: stamp, Term: 7, Attempt: 1}
	for name, r := range map[string]Record{"accepted": live, "done": done} {
		v, err := r.encode()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = r.encode()
			}
			b.ReportMetric(float64(len(v)), "bytes")
		})
	}
}
