package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/message"
)

// What a handler returns becomes the task's result or error: a panic, a
// result that is not JSON or too large, and a handler past its time are
// errors, and the worker goes on.
func TestHandlerOutcomes(t *testing.T) {
	w := newWorker("w-00000001", nil, workerConfig{slots: 1, timeout: 100 * time.Millisecond, maxResult: 16}, nil, time.Second, slog.New(slog.DiscardHandler))
	task := message.Task{UUID: testUUID, Kind: "k", Payload: json.RawMessage(`{"a":1}`), Attempt: 2}
	for _, tt := range []struct {
		name    string
		work    func(ctx context.Context, t *meshpool.Task) (json.RawMessage, error)
		result  string
		errText string
	}{
		{"a result", func(_ context.Context, t *meshpool.Task) (json.RawMessage, error) {
			if t.UUID != testUUID || t.Kind != "k" || string(t.Payload) != `{"a":1}` || t.Attempt != 2 {
				return nil, errors.New("the handler was not given the task")
			}
			return json.RawMessage(`[1,"x"]`), nil
		}, `[1,"x"]`, ""},
		{"nil is null", func(context.Context, *meshpool.Task) (json.RawMessage, error) { return nil, nil }, "null", ""},
		{"an error", func(context.Context, *meshpool.Task) (json.RawMessage, error) {
			return nil, errors.New("no such image")
		}, "", "no such image"},
		{"a panic", func(context.Context, *meshpool.Task) (json.RawMessage, error) { panic("boom") }, "", "handler panicked: boom"},
		{"not JSON", func(context.Context, *meshpool.Task) (json.RawMessage, error) { return json.RawMessage(`{"a":`), nil }, "", "not JSON"},
		{"too large", func(context.Context, *meshpool.Task) (json.RawMessage, error) {
			return json.RawMessage(`"` + strings.Repeat("x", 20) + `"`), nil
		}, "", "more than --max-result 16"},
		{"past its time", func(ctx context.Context, _ *meshpool.Task) (json.RawMessage, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, "", "timed out after 100ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := w.run(w.ctx, task, meshpool.HandlerFunc(tt.work), time.Now().Add(w.timeout))
			if string(res) != tt.result || (err == nil) != (tt.errText == "") || err != nil && !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("result %s, error %v; want %s, %q", res, err, tt.result, tt.errText)
			}
		})
	}
	if b := w.busy.Load(); b != 0 {
		t.Fatalf("%d slots busy after every handler returned", b)
	}
}

// A result's error is cut to message.MaxErrorLen, on a rune boundary.
func TestErrorTextIsBounded(t *testing.T) {
	s := errorText(errors.New(strings.Repeat("é", message.MaxErrorLen)))
	if len(s) > message.MaxErrorLen || !strings.HasSuffix(s, "…") || !json.Valid([]byte(`"`+s+`"`)) {
		t.Fatalf("error text of %d bytes, ends %q", len(s), s[len(s)-8:])
	}
}
