package message_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

// appender is every message with a hand-written encoder.
type appender interface{ AppendJSON([]byte) []byte }

// sameAsMarshal fails unless v.AppendJSON writes exactly what json.Marshal
// writes for v.
func sameAsMarshal(t *testing.T, v appender) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%+v): %v", v, err)
	}
	prefix := []byte("xx")
	got := v.AppendJSON(prefix)
	if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
		t.Fatalf("AppendJSON(%#v)\n got %s\nwant %s", v, got[2:], want)
	}
}

// awkward strings: everything encoding/json escapes, and what it does not.
var awkward = []string{"", "plain", `q"uote`, `back\slash`, "<tag>&amp;", "tab\tnl\n\x00\x1f", "é ü 世界",
	"\u2028\u2029", "bad utf8 \xff\xfe", "\x7f del", "a/b", "{}[],:"}

func messagesFor(s string, n int64, ts time.Time) []appender {
	stamp := message.Timestamp{Time: ts}
	v := message.Version
	payload := json.RawMessage(`{"s":` + quoteJSON(strings.NewReplacer("<", "", ">", "", "&", "").Replace(s)) + `,"n":[` + strconv.FormatInt(n, 10) + `]}`)
	res := message.Result{V: v, UUID: s, Executor: s, Kind: s, Number: n, Result: payload, Start: stamp, Finish: stamp, Term: n, Attempt: n / 2}
	failed := message.Result{V: v, UUID: s, Executor: s, Kind: s, Error: s + "x", Start: stamp, Finish: stamp, Term: n}
	return []appender{
		message.Task{V: v, UUID: s, Executor: s, Kind: s, Payload: payload, Number: n, Term: -n, Attempt: n},
		failed,
		message.Ack{Accepted: n%2 == 0, Reason: s, Term: n},
		message.Ack{},
		res,
		message.Submit{V: v, UUID: s, Kind: s + "k", Payload: payload, Number: n, Durability: s},
		message.Submit{V: v, Kind: "k"},
		message.Submit{V: v, Kind: "k", Options: message.Options{Timeout: message.Duration(n), MaxAttempts: int(n % 100), RunAt: stamp,
			Delay: message.Duration(n / 3), Priority: int(n % 10), Backoff: message.Duration(n / 7), BackoffMax: message.Duration(-n)}},
		message.Task{V: v, UUID: s, Executor: s, Kind: s, Payload: payload, Term: n, Attempt: n, TimeoutMS: n},
		message.Result{V: v, UUID: s, Executor: s, Kind: s, Error: s + "x", Permanent: true, Start: stamp, Finish: stamp, Term: n},
		message.AttemptError{Attempt: int(n), Executor: s, Error: s, At: stamp},
		message.SubmitReply{V: v, UUID: s, Accepted: true, Duplicate: true, State: s, Result: &res, Term: n, Error: s, Temporary: true},
		message.SubmitReply{V: v},
	}
}

func TestAppendJSONIsJSONMarshal(t *testing.T) {
	times := []time.Time{{}, time.Date(2026, 11, 27, 6, 40, 22, 123456789, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.FixedZone("x", -(3*3600+30*60)))}
	for _, s := range awkward {
		for _, n := range []int64{0, 1, -1, 1 << 62, -1 << 63} {
			for _, ts := range times {
				for _, m := range messagesFor(s, n, ts) {
					sameAsMarshal(t, m)
				}
			}
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, int64(42), int64(1700000000123))
	}
	f.Fuzz(func(t *testing.T, s string, n, ms int64) {
		for _, m := range messagesFor(s, n, time.UnixMilli(ms).UTC()) {
			sameAsMarshal(t, m)
		}
	})
}

func BenchmarkEncodeResult(b *testing.B) {
	stamp := message.NewTimestamp(time.Now())
	r := message.Result{UUID: "11111111-2222-3333-4444-555555555555", Executor: "node-a-1234abcd", Kind: message.KindTriple, Number: 42, Result: json.RawMessage("126"), Start: stamp, Finish: stamp, Term: 7}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(r)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		for b.Loop() {
			_ = r.AppendJSON(make([]byte, 0, 256))
		}
	})
}

// quoteJSON is s as a JSON string, as json.Marshal writes it.
func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
