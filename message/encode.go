package message

import "github.com/meshpool/meshpool/internal/jsonw"

// The Append methods write what json.Marshal writes for the same value
// (encode_test.go checks that byte for byte) without reflection: these
// messages are encoded for every task.

// AppendJSON appends the task as JSON.
func (t Task) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	b = jsonw.String(jsonw.Key(b, "uuid"), t.UUID)
	b = jsonw.String(jsonw.Key(b, "executor"), t.Executor)
	b = jsonw.Int(jsonw.Key(b, "number"), t.Number)
	b = jsonw.Int(jsonw.Key(b, "term"), t.Term)
	b = jsonw.Int(jsonw.Key(b, "attempt"), t.Attempt)
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
	b = append(b, '{')
	b = jsonw.String(jsonw.Key(b, "uuid"), r.UUID)
	b = jsonw.String(jsonw.Key(b, "executor"), r.Executor)
	b = jsonw.Int(jsonw.Key(b, "number"), r.Number)
	b = jsonw.Int(jsonw.Key(b, "result"), r.Result)
	b = jsonw.Layout(jsonw.Key(b, "start"), r.Start.Time, TimeLayout)
	b = jsonw.Layout(jsonw.Key(b, "finish"), r.Finish.Time, TimeLayout)
	b = jsonw.Int(jsonw.Key(b, "term"), r.Term)
	b = jsonw.Int(jsonw.Key(b, "attempt"), r.Attempt)
	return append(b, '}')
}

// AppendJSON appends the submission as JSON.
func (s Submit) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if s.UUID != "" {
		b = jsonw.String(jsonw.Key(b, "uuid"), s.UUID)
	}
	b = jsonw.Int(jsonw.Key(b, "number"), s.Number)
	if s.Durability != "" {
		b = jsonw.String(jsonw.Key(b, "durability"), s.Durability)
	}
	return append(b, '}')
}

// AppendJSON appends the answer as JSON.
func (r SubmitReply) AppendJSON(b []byte) []byte {
	b = append(b, '{')
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
