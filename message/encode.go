package message

import (
	"strconv"

	"github.com/meshpool/meshpool/internal/jsonw"
)

// The Append methods write what json.Marshal writes for the same value
// with V set to Version (encode_test.go checks that byte for byte) without
// reflection: these messages are encoded for every task. They write the
// format they implement, so "v" is always Version. A payload or result is
// written as it is: it must be valid JSON (the decoders and the worker
// check it).

// AppendJSON appends the task as JSON.
func (t Task) AppendJSON(b []byte) []byte {
	b = appendVersion(b)
	b = jsonw.String(jsonw.Key(b, "uuid"), t.UUID)
	b = jsonw.String(jsonw.Key(b, "executor"), t.Executor)
	b = jsonw.String(jsonw.Key(b, "kind"), t.Kind)
	b = appendRaw(jsonw.Key(b, "payload"), t.Payload)
	if t.Number != 0 {
		b = jsonw.Int(jsonw.Key(b, "number"), t.Number)
	}
	b = jsonw.Int(jsonw.Key(b, "term"), t.Term)
	b = jsonw.Int(jsonw.Key(b, "attempt"), t.Attempt)
	if t.TimeoutMS != 0 {
		b = jsonw.Int(jsonw.Key(b, "timeout_ms"), t.TimeoutMS)
	}
	return append(b, '}')
}

// AppendJSON appends the ack as JSON.
func (a Ack) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	b = jsonw.Bool(jsonw.Key(b, "accepted"), a.Accepted)
	if a.Reason != "" {
		b = jsonw.String(jsonw.Key(b, "reason"), a.Reason)
	}
	b = jsonw.Int(jsonw.Key(b, "term"), a.Term)
	return append(b, '}')
}

// AppendJSON appends the result as JSON.
func (r Result) AppendJSON(b []byte) []byte {
	b = appendVersion(b)
	b = jsonw.String(jsonw.Key(b, "uuid"), r.UUID)
	b = jsonw.String(jsonw.Key(b, "executor"), r.Executor)
	b = jsonw.String(jsonw.Key(b, "kind"), r.Kind)
	if r.Number != 0 {
		b = jsonw.Int(jsonw.Key(b, "number"), r.Number)
	}
	if len(r.Result) > 0 {
		b = appendRaw(jsonw.Key(b, "result"), r.Result)
	}
	if r.Error != "" {
		b = jsonw.String(jsonw.Key(b, "error"), r.Error)
	}
	if r.Permanent {
		b = jsonw.Bool(jsonw.Key(b, "permanent"), true)
	}
	b = jsonw.Layout(jsonw.Key(b, "start"), r.Start.Time, TimeLayout)
	b = jsonw.Layout(jsonw.Key(b, "finish"), r.Finish.Time, TimeLayout)
	b = jsonw.Int(jsonw.Key(b, "term"), r.Term)
	b = jsonw.Int(jsonw.Key(b, "attempt"), r.Attempt)
	return append(b, '}')
}

// AppendJSON appends the submission as JSON. A submission without a kind
// is the demo's: its number is written even when 0.
func (s Submit) AppendJSON(b []byte) []byte {
	b = appendVersion(b)
	if s.UUID != "" {
		b = jsonw.String(jsonw.Key(b, "uuid"), s.UUID)
	}
	if s.Kind != "" {
		b = jsonw.String(jsonw.Key(b, "kind"), s.Kind)
	}
	if len(s.Payload) > 0 {
		b = appendRaw(jsonw.Key(b, "payload"), s.Payload)
	}
	if s.Number != 0 || s.Kind == "" {
		b = jsonw.Int(jsonw.Key(b, "number"), s.Number)
	}
	if s.Durability != "" {
		b = jsonw.String(jsonw.Key(b, "durability"), s.Durability)
	}
	b = s.Options.appendJSON(b)
	return append(b, '}')
}

// AppendJSON appends the answer as JSON.
func (r SubmitReply) AppendJSON(b []byte) []byte {
	b = appendVersion(b)
	if r.UUID != "" {
		b = jsonw.String(jsonw.Key(b, "uuid"), r.UUID)
	}
	b = jsonw.Bool(jsonw.Key(b, "accepted"), r.Accepted)
	if r.Duplicate {
		b = jsonw.Bool(jsonw.Key(b, "duplicate"), true)
	}
	if r.State != "" {
		b = jsonw.String(jsonw.Key(b, "state"), r.State)
	}
	if r.Result != nil {
		b = r.Result.AppendJSON(jsonw.Key(b, "result"))
	}
	if r.Term != 0 {
		b = jsonw.Int(jsonw.Key(b, "term"), r.Term)
	}
	if r.Error != "" {
		b = jsonw.String(jsonw.Key(b, "error"), r.Error)
	}
	if r.Temporary {
		b = jsonw.Bool(jsonw.Key(b, "temporary"), true)
	}
	return append(b, '}')
}

// appendRaw appends a JSON value as it is; null when empty.
func appendRaw(b, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

// appendVersion opens an object with its format version.
func appendVersion(b []byte) []byte {
	return append(b, `{"v":`+versionText...)
}

var versionText = strconv.Itoa(Version)

// AppendJSON appends the attempt's error as JSON.
func (e AttemptError) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	b = jsonw.Int(jsonw.Key(b, "attempt"), int64(e.Attempt))
	if e.Executor != "" {
		b = jsonw.String(jsonw.Key(b, "executor"), e.Executor)
	}
	b = jsonw.String(jsonw.Key(b, "error"), e.Error)
	b = jsonw.Layout(jsonw.Key(b, "at"), e.At.Time, TimeLayout)
	return append(b, '}')
}
