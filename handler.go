package meshpool

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/meshpool/meshpool/message"
)

// Task is one task as its handler sees it.
type Task struct {
	// UUID names the task; it is the same on every attempt, so a handler
	// with side effects can use it as an idempotency key.
	UUID string
	// Kind is the name the task was submitted under.
	Kind string
	// Payload is the task's input, a JSON value as submitted.
	Payload json.RawMessage
	// Attempt counts the sendings of the task to a worker, from 1. A task
	// is run more than once only when a worker was lost or timed out with
	// it, so a handler may see an attempt > 1 for work that was done.
	Attempt int
}

// Handler works tasks of one kind. Work returns the task's result, a JSON
// value (nil means null), or an error whose text becomes the task's error.
// ctx ends when the task's time is up, when the node shuts down past its
// grace, or when the task is cancelled: Work should return soon after.
// An error wrapped with Permanent fails the task at once, with no more
// attempts. A panic in Work is recovered and becomes the task's error (not
// a permanent one).
type Handler interface {
	Work(ctx context.Context, t *Task) (json.RawMessage, error)
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(ctx context.Context, t *Task) (json.RawMessage, error)

// Work calls f.
func (f HandlerFunc) Work(ctx context.Context, t *Task) (json.RawMessage, error) { return f(ctx, t) }

// Typed returns a Handler that decodes the payload into an A, calls f, and
// encodes f's R as the result. A payload that does not decode into an A is
// the task's error, and f is not called.
func Typed[A, R any](f func(ctx context.Context, t *Task, args A) (R, error)) Handler {
	return HandlerFunc(func(ctx context.Context, t *Task) (json.RawMessage, error) {
		var args A
		if err := json.Unmarshal(t.Payload, &args); err != nil {
			return nil, fmt.Errorf("payload does not decode as %T: %w", args, err)
		}
		res, err := f(ctx, t, args)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("result does not encode: %w", err)
		}
		return b, nil
	})
}

// Mux holds one Handler per kind. Register every kind before the node
// starts; a Mux is not changed after that.
type Mux struct {
	handlers map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: make(map[string]Handler)} }

// Handle registers h for kind. It panics when kind is not a valid kind name
// (letters, digits, '-' and '_', at most 64 bytes), when h is nil, or when
// kind has a handler already: all of them are mistakes in the program.
func (m *Mux) Handle(kind string, h Handler) {
	if err := message.ValidKind(kind); err != nil {
		panic("meshpool: Mux.Handle: " + err.Error())
	}
	if h == nil {
		panic("meshpool: Mux.Handle: nil handler for kind " + kind)
	}
	if _, ok := m.handlers[kind]; ok {
		panic("meshpool: Mux.Handle: kind " + kind + " has a handler already")
	}
	m.handlers[kind] = h
}

// HandleFunc registers f for kind, as Handle.
func (m *Mux) HandleFunc(kind string, f func(ctx context.Context, t *Task) (json.RawMessage, error)) {
	m.Handle(kind, HandlerFunc(f))
}

// Handler returns kind's handler.
func (m *Mux) Handler(kind string) (Handler, bool) {
	h, ok := m.handlers[kind]
	return h, ok
}

// Kinds returns the registered kinds, sorted.
func (m *Mux) Kinds() []string {
	kinds := make([]string, 0, len(m.handlers))
	for k := range m.handlers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}
