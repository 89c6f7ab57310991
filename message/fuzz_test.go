package message_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/message"
)

// The seed corpus runs in every `go test`; `go test -fuzz=FuzzDecodeTask ./message`
// explores further. Each decoder must either refuse its input or return a value
// that validates and survives a round trip.

func FuzzDecodeTask(f *testing.F) {
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a-1f2e3d4c","number":42,"term":7}`))
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a-1f2e3d4c","number":42,"term":7,"attempt":2}`))
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a-1f2e3d4c","number":42,"term":7,"attempt":-1}`))
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a.b","number":42,"term":7}`))
	f.Add([]byte(`{"number":1e400}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := message.DecodeTask(data)
		if err != nil {
			return
		}
		roundTrip(t, task, message.DecodeTask)
	})
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a","number":1,"result":3,"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.000Z","term":1}`))
	f.Add([]byte(`{"uuid":"` + id + `","executor":"a","number":1,"result":3,"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.000Z","term":1,"attempt":3}`))
	f.Add([]byte(`{"start":"2026-01-01T00:00:00.000+25:00"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := message.DecodeResult(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded result does not validate: %v", err)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte(`{"accepted":true,"term":3}`))
	f.Add([]byte(`{"accepted":false,"reason":"stale term","term":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := message.DecodeAck(data)
		if err != nil {
			return
		}
		roundTrip(t, a, message.DecodeAck)
	})
}

func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("cannot marshal %+v: %v", v, err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip changed %+v into %+v", v, got)
	}
}

func FuzzDecodeSubmit(f *testing.F) {
	f.Add([]byte(`{"number":42}`))
	f.Add([]byte(`{"uuid":"` + id + `","number":-7}`))
	f.Add([]byte(`{"uuid":"","number":1152921504606846977}`))
	f.Add([]byte(`{"number":"42"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"number":null}`))
	f.Add([]byte(`{"numbr":7}`))
	f.Add([]byte(`{"number":7,"x":{"number":1,"y":["}",{"z":null}]}}`))
	f.Add([]byte(`{"n\u0075mber":7,"uuid":"` + strings.ToUpper(id) + `"}`))
	f.Add([]byte(`{"accepted":false,"error":"invalid task: x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := message.DecodeSubmit(data)
		if err != nil {
			return
		}
		if s.Number*3/3 != s.Number {
			t.Fatalf("number %d overflows when tripled", s.Number)
		}
		if s.UUID != message.CanonicalUUID(s.UUID) {
			t.Fatalf("uuid %q is not canonical", s.UUID)
		}
		if !bytes.Contains(data, []byte("number")) && !bytes.Contains(data, []byte("kind")) && !bytes.Contains(data, []byte(`\u`)) {
			t.Fatalf("%s has no kind and no number but was accepted as %+v", data, s)
		}
		roundTrip(t, s, message.DecodeSubmit)
	})
}

func FuzzDecodeSubmitReply(f *testing.F) {
	f.Add([]byte(`{"uuid":"` + id + `","accepted":true,"state":"pending","term":3}`))
	f.Add([]byte(`{"accepted":false,"error":"invalid task: x","temporary":true}`))
	f.Add([]byte(`{"accepted":true}`))
	f.Add([]byte(`{"uuid":"` + id + `","accepted":true,"duplicate":true,"state":"done","result":{"uuid":"` + id + `","executor":"a","number":1,"result":3,"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:01.000Z","term":1},"term":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := message.DecodeSubmitReply(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded reply does not validate: %v", err)
		}
		// An answer sent back to tasks.submit must not make a task.
		if s, err := message.DecodeSubmit(r.AppendJSON(nil)); err == nil {
			t.Fatalf("answer %+v decodes as submission %+v", r, s)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"kind":"promoted","node":"a-1f2e3d4c","term":3,"time":"2026-11-27T04:00:00.000Z","by":"a-1f2e3d4c"}`))
	f.Add([]byte(`{"kind":"left","node":"b.c","term":3,"time":"x","by":"a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := message.DecodeEvent(data)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
	})
}
