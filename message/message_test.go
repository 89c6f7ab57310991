package message_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

const id = "0b5f7c3e-8d1a-4c2b-9e6f-1a2b3c4d5e6f"

func TestDecodeTask(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"valid", `{"uuid":"` + id + `","executor":"a-1f2e3d4c","number":42,"term":7}`, nil},
		{"unknown fields are ignored", `{"uuid":"` + id + `","executor":"a","number":1,"term":1,"x":[1]}`, nil},
		{"not json", `hello`, message.ErrMalformed},
		{"empty", ``, message.ErrMalformed},
		{"trailing data", `{"uuid":"` + id + `","executor":"a","number":1,"term":1} {}`, message.ErrMalformed},
		{"number as string", `{"uuid":"` + id + `","executor":"a","number":"42","term":1}`, message.ErrMalformed},
		{"term as float", `{"uuid":"` + id + `","executor":"a","number":42,"term":1.5}`, message.ErrMalformed},
		{"bad uuid", `{"uuid":"nope","executor":"a","number":42,"term":1}`, message.ErrInvalid},
		{"uuid without dashes", `{"uuid":"0b5f7c3e8d1a4c2b9e6f1a2b3c4d5e6f","executor":"a","number":42,"term":1}`, message.ErrInvalid},
		{"no executor", `{"uuid":"` + id + `","number":42,"term":1}`, message.ErrInvalid},
		{"executor with a dot", `{"uuid":"` + id + `","executor":"a.b","number":42,"term":1}`, message.ErrInvalid},
		{"executor wildcard", `{"uuid":"` + id + `","executor":">","number":42,"term":1}`, message.ErrInvalid},
		{"zero term", `{"uuid":"` + id + `","executor":"a","number":42,"term":0}`, message.ErrInvalid},
		{"negative term", `{"uuid":"` + id + `","executor":"a","number":42,"term":-3}`, message.ErrInvalid},
		{"too large", `{"uuid":"` + id + `","executor":"a","number":42,"term":1,"pad":"` + strings.Repeat("x", message.MaxSize) + `"}`, message.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := message.DecodeTask([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeTask(%q) error = %v, want %v", tt.in, err, tt.want)
			}
			if err != nil && !reflect.DeepEqual(task, message.Task{}) {
				t.Fatalf("a refused task must come back empty, got %+v", task)
			}
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	start := time.Date(2026, 11, 27, 4, 9, 46, 123456789, time.UTC)
	r := message.Result{
		UUID: id, Executor: "b-00aa11bb", Kind: message.KindTriple, Number: 42, Result: json.RawMessage("126"),
		Start: message.NewTimestamp(start), Finish: message.NewTimestamp(start.Add(1500 * time.Millisecond)), Term: 9,
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"start":"2026-11-27T04:09:46.123Z"`) || !strings.Contains(string(b), `"finish":"2026-11-27T04:09:47.623Z"`) {
		t.Fatalf("times must be RFC 3339 with milliseconds: %s", b)
	}
	got, err := message.DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Start.Equal(r.Start.Time) || !got.Finish.Equal(r.Finish.Time) || got.UUID != r.UUID || string(got.Result) != "126" || got.Term != 9 {
		t.Fatalf("round trip changed the result: %+v -> %+v", r, got)
	}
}

func TestDecodeResultRefuses(t *testing.T) {
	base := `"uuid":"` + id + `","executor":"a","number":1,"result":3,"term":1`
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"no times", `{` + base + `}`, message.ErrInvalid},
		{"finish before start", `{` + base + `,"start":"2026-01-01T00:00:01.000Z","finish":"2026-01-01T00:00:00.000Z"}`, message.ErrInvalid},
		{"time not a string", `{` + base + `,"start":5,"finish":"2026-01-01T00:00:00.000Z"}`, message.ErrMalformed},
		{"time not RFC 3339", `{` + base + `,"start":"yesterday","finish":"2026-01-01T00:00:00.000Z"}`, message.ErrMalformed},
		{"array", `[1,2,3]`, message.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := message.DecodeResult([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeResult error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeAck(t *testing.T) {
	if _, err := message.DecodeAck([]byte(`{"accepted":false,"term":3}`)); !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("a refusal without a reason must be invalid, got %v", err)
	}
	a, err := message.DecodeAck([]byte(`{"accepted":true,"term":3}`))
	if err != nil || !a.Accepted || a.Term != 3 {
		t.Fatalf("DecodeAck = %+v, %v", a, err)
	}
}

func TestTaskSubject(t *testing.T) {
	if got := message.TaskSubject("a-1f2e3d4c"); got != "tasks.a-1f2e3d4c" {
		t.Fatalf("TaskSubject = %q", got)
	}
}

func TestDecodeSubmit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"number only", `{"number":42}`, nil},
		{"with uuid", `{"uuid":"` + id + `","number":42}`, nil},
		{"negative", `{"number":-42}`, nil},
		{"durable", `{"number":1,"durability":"durable"}`, nil},
		{"durability none", `{"number":1,"durability":"none"}`, nil},
		{"unknown durability", `{"number":1,"durability":"maybe"}`, message.ErrInvalid},
		{"number as string", `{"number":"42"}`, message.ErrMalformed},
		{"fraction", `{"number":4.2}`, message.ErrMalformed},
		{"huge", `{"number":1152921504606846977}`, message.ErrInvalid},
		{"bad uuid", `{"uuid":"x","number":1}`, message.ErrInvalid},
		{"not an object", `42`, message.ErrMalformed},
		{"oversized", `{"number":1,"pad":"` + strings.Repeat("x", message.MaxSize) + `"}`, message.ErrTooLarge},
		{"zero", `{"number":0}`, nil},
		{"spaces everywhere", " {\n \"number\" : 7 ,\t\"uuid\":\"" + id + "\" }\r\n", nil},
		{"escaped key", `{"n\u0075mber":7}`, nil},
		{"empty object", `{}`, message.ErrInvalid},
		{"null", `null`, message.ErrMalformed},
		{"number null", `{"number":null}`, message.ErrInvalid},
		{"misspelt number", `{"numbr":7}`, message.ErrInvalid},
		{"unknown field", `{"number":7,"colour":"red"}`, message.ErrInvalid},
		{"unknown nested field", `{"number":7,"x":{"number":1,"y":[1,{"z":"}"}]}}`, message.ErrInvalid},
		{"key in another case", `{"Number":7}`, message.ErrInvalid},
		{"number twice", `{"number":7,"number":8}`, message.ErrInvalid},
		{"uuid only", `{"uuid":"` + id + `"}`, message.ErrInvalid},
		{"array", `[{"number":7}]`, message.ErrMalformed},
		{"kind and payload", `{"kind":"resize","payload":{"url":"x","w":[1,2]}}`, nil},
		{"kind without payload", `{"kind":"cleanup"}`, nil},
		{"kind, payload null", `{"kind":"cleanup","payload":null}`, nil},
		{"payload a string", `{"kind":"echo","payload":"hi"}`, nil},
		{"triple by kind", `{"kind":"triple","payload":7}`, nil},
		{"triple, number and payload agree", `{"kind":"triple","payload":7,"number":7}`, nil},
		{"triple, number and payload differ", `{"kind":"triple","payload":7,"number":8}`, message.ErrInvalid},
		{"triple, payload not a number", `{"kind":"triple","payload":"7"}`, message.ErrInvalid},
		{"number with another kind", `{"kind":"resize","number":7}`, message.ErrInvalid},
		{"payload without kind", `{"payload":7}`, message.ErrInvalid},
		{"kind with a dot", `{"kind":"a.b","payload":1}`, message.ErrInvalid},
		{"kind too long", `{"kind":"` + strings.Repeat("k", 65) + `","payload":1}`, message.ErrInvalid},
		{"kind of 64", `{"kind":"` + strings.Repeat("k", 64) + `","payload":1}`, nil},
		{"kind not a string", `{"kind":7,"payload":1}`, message.ErrMalformed},
		{"payload not JSON", `{"kind":"k","payload":nope}`, message.ErrMalformed},
		{"version 1", `{"v":1,"kind":"k"}`, nil},
		{"newer version", `{"v":2,"kind":"k"}`, message.ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := message.DecodeSubmit([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeSubmit(%q) = %v, want %v", tt.in, err, tt.want)
			}
			if err != nil && !reflect.DeepEqual(s, message.Submit{}) {
				t.Fatalf("a refused submission must come back empty, got %+v", s)
			}
		})
	}
}

// A refusal names what is wrong, so a user can fix the request.
func TestDecodeSubmitReasonNamesTheField(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                       `field "kind" is required`,
		`{"number":null}`:          `field "kind" is required`,
		`{"numbr":7}`:              `unknown field "numbr"`,
		`{"number":1,"number":1}`:  `field "number" given twice`,
		`null`:                     `want a JSON object`,
		`{"number":1,"durable":1}`: `unknown field "durable"`,
	} {
		_, err := message.DecodeSubmit([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeSubmit(%s) = %v, want an error saying %q", in, err, want)
		}
	}
}

// A node refuses a message of a format version it cannot read.
func TestNewerVersionRefused(t *testing.T) {
	stamp := `"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.000Z"`
	if _, err := message.DecodeTask([]byte(`{"v":2,"uuid":"` + id + `","executor":"a","kind":"k","payload":1,"term":1}`)); !errors.Is(err, message.ErrVersion) {
		t.Errorf("task of version 2: %v", err)
	}
	if _, err := message.DecodeResult([]byte(`{"v":2,"uuid":"` + id + `","executor":"a","kind":"k","result":1,` + stamp + `,"term":1}`)); !errors.Is(err, message.ErrVersion) {
		t.Errorf("result of version 2: %v", err)
	}
	if _, err := message.DecodeResult([]byte(`{"uuid":"` + id + `","executor":"a","kind":"k","result":1,"error":"x",` + stamp + `,"term":1}`)); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("result with a result and an error: %v", err)
	}
	if _, err := message.DecodeResult([]byte(`{"uuid":"` + id + `","executor":"a","kind":"k",` + stamp + `,"term":1}`)); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("result with neither a result nor an error: %v", err)
	}
	old, err := message.DecodeTask([]byte(`{"uuid":"` + id + `","executor":"a","number":7,"term":1}`))
	if err != nil || old.Kind != message.KindTriple || string(old.Payload) != "7" || old.Number != 7 {
		t.Errorf("a task written before kinds: %+v, %v", old, err)
	}
}

// The UUID is the idempotency key in one case: ABC… and abc… are one task.
func TestDecodeSubmitCanonicalisesTheUUID(t *testing.T) {
	upper := strings.ToUpper(id)
	s, err := message.DecodeSubmit([]byte(`{"uuid":"` + upper + `","number":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.UUID != id {
		t.Fatalf("uuid %q, want %q", s.UUID, id)
	}
	if got := message.CanonicalUUID(upper); got != id {
		t.Fatalf("CanonicalUUID(%q) = %q, want %q", upper, got, id)
	}
}

// Every answer the master sends on tasks.submit is refused as a submission,
// so an answer sent back to tasks.submit never makes a task.
func TestSubmitReplyIsNeverASubmission(t *testing.T) {
	stamp := message.NewTimestamp(time.Now())
	res := &message.Result{UUID: id, Executor: "a", Kind: message.KindTriple, Number: 42, Result: json.RawMessage("126"), Start: stamp, Finish: stamp, Term: 3}
	for name, r := range map[string]message.SubmitReply{
		"accepted":           {UUID: id, Accepted: true, State: message.StatePending, Term: 3},
		"duplicate pending":  {UUID: id, Accepted: true, Duplicate: true, State: message.StatePending, Term: 3},
		"duplicate done":     {UUID: id, Accepted: true, Duplicate: true, State: message.StateDone, Result: res, Term: 3},
		"refused":            {UUID: id, Error: "invalid task: message: invalid: number 1152921504606846977 out of range ±2^60"},
		"refused, no uuid":   {Error: "invalid task: message: malformed: want a JSON object"},
		"temporary":          {UUID: id, Error: "cannot record the task: etcdserver: request timed out", Temporary: true, Term: 3},
		"temporary, no term": {Error: "no master", Temporary: true},
	} {
		t.Run(name, func(t *testing.T) {
			if err := r.Validate(); err != nil {
				t.Fatalf("not an answer the master sends: %v", err)
			}
			for _, body := range [][]byte{r.AppendJSON(nil), mustMarshal(t, r)} {
				if s, err := message.DecodeSubmit(body); err == nil {
					t.Fatalf("answer %s decodes as submission %+v", body, s)
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A worker checks a task's number as the master checks a submission's.
func TestDecodeTaskNumberRange(t *testing.T) {
	for _, n := range []int64{message.MaxNumber + 1, -message.MaxNumber - 1, 1 << 62, -1 << 63} {
		body := []byte(fmt.Sprintf(`{"uuid":%q,"executor":"a","number":%d,"term":1}`, id, n))
		if _, err := message.DecodeTask(body); !errors.Is(err, message.ErrInvalid) || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("task with number %d: %v, want out of range", n, err)
		}
	}
	for _, n := range []int64{message.MaxNumber, -message.MaxNumber, 0} {
		body := message.Task{UUID: id, Executor: "a", Kind: message.KindTriple, Payload: json.RawMessage(fmt.Sprint(n)), Number: n, Term: 1}.AppendJSON(nil)
		if _, err := message.DecodeTask(body); err != nil {
			t.Errorf("task with number %d: %v", n, err)
		}
	}
}

// A time with JSON escapes decodes like the same time without them.
func TestDecodeResultTimeWithEscapes(t *testing.T) {
	base := `{"uuid":"` + id + `","executor":"a","number":1,"result":3,"term":1,`
	plain, err := message.DecodeResult([]byte(base + `"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.250-01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	escaped, err := message.DecodeResult([]byte(base + `"start":"\u0032026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.250\u002d01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !plain.Start.Equal(escaped.Start.Time) || !plain.Finish.Equal(escaped.Finish.Time) {
		t.Fatalf("escaped times %v %v, plain %v %v", escaped.Start, escaped.Finish, plain.Start, plain.Finish)
	}
	if _, err := message.DecodeResult([]byte(base + `"start":"2026-01-01T00:00:00.000Z\n","finish":"2026-01-01T00:00:01.000Z"}`)); !errors.Is(err, message.ErrMalformed) {
		t.Fatalf("a raw newline in a time: %v, want ErrMalformed", err)
	}
}

// A triple payload is a JSON integer; TripleNumber reads it as
// strconv.ParseInt would, and refuses what JSON would not write.
func TestTripleNumber(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "7": 7, "-7": -7, " 42\n": 42, "1152921504606846976": 1 << 60, "-1152921504606846976": -1 << 60} {
		if n, err := message.TripleNumber(json.RawMessage(in)); err != nil || n != want {
			t.Errorf("TripleNumber(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "-", "+7", "07", "-0x1", "1e3", "4.2", `"7"`, "null", "1152921504606846977", "9223372036854775808", "99999999999999999999"} {
		if n, err := message.TripleNumber(json.RawMessage(in)); err == nil {
			t.Errorf("TripleNumber(%q) = %d, want an error", in, n)
		}
	}
}

// A submission's subject names its submitter: tasks.submit is the
// anonymous one, tasks.submit.<user> a user; nothing else is a
// submission's subject, and no token that is not a valid name is taken.
func TestSubmitterOf(t *testing.T) {
	nkey := "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	for _, who := range []string{"", "alice", "ci-bot_2", nkey} {
		subject := message.SubmitSubject(who)
		got, ok := message.SubmitterOf(subject)
		if !ok || got != who {
			t.Errorf("SubmitterOf(%q) = %q, %v; want %q", subject, got, ok, who)
		}
		if err := message.ValidSubmitter(who); (err == nil) != (who != "") {
			t.Errorf("ValidSubmitter(%q) = %v", who, err)
		}
	}
	if s := message.SubmitSubject(""); s != message.SubjectSubmit {
		t.Errorf("the anonymous submitter submits on %s, want %s", s, message.SubjectSubmit)
	}
	for _, subject := range []string{"tasks.submit.", "tasks.submit.*", "tasks.submit.>", "tasks.submit.a.b", "tasks.submit.é",
		"tasks.submit." + message.MasterSubmitter, "tasks.submit." + strings.Repeat("a", message.MaxSubmitterLen+1), "tasks.submitx", "tasks.get", "results"} {
		if got, ok := message.SubmitterOf(subject); ok {
			t.Errorf("SubmitterOf(%q) = %q, want no submitter", subject, got)
		}
	}
	for _, name := range []string{"a.b", "a b", "*", ">", message.MasterSubmitter, strings.Repeat("a", message.MaxSubmitterLen+1)} {
		if err := message.ValidSubmitter(name); err == nil {
			t.Errorf("ValidSubmitter(%q) = nil, want an error", name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { message.SubmitterOf("tasks.submit.alice") }); n != 0 {
		t.Errorf("SubmitterOf allocates %v times", n)
	}
}

// InInbox: a user's own inboxes only, not another's that starts the same.
func TestInInbox(t *testing.T) {
	for reply, want := range map[string]bool{
		"_INBOX.alice.x": true, "_INBOX.alice.x.y": true, "_INBOX.alice.": true,
		"_INBOX.alice": false, "_INBOX.alicex.y": false, "_INBOX.bob.x": false, "_INBOX.x": false, "alice.x": false, "": false,
	} {
		if got := message.InInbox(reply, "alice"); got != want {
			t.Errorf("InInbox(%q, alice) = %v, want %v", reply, got, want)
		}
	}
}
