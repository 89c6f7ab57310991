package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// retryingMaster accepts every submission, answers a submission again
// with state and result of again (nil: still pending), or with again's
// Error as a temporary refusal, and Get with info's answer.
type retryingMaster struct {
	mu    sync.Mutex
	again message.SubmitReply
	info  message.TaskInfo
	gets  int
}

func (m *retryingMaster) set(again message.SubmitReply, info message.TaskInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.again, m.info = again, info
}

func (m *retryingMaster) asked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets
}

func startRetryingMaster(t *testing.T, b *broker.Broker) *retryingMaster {
	t.Helper()
	m := &retryingMaster{}
	seen := map[string]bool{}
	answer(t, b, message.SubjectSubmit, func(body []byte) any {
		var s message.Submit
		_ = json.Unmarshal(body, &s)
		m.mu.Lock()
		defer m.mu.Unlock()
		reply := message.SubmitReply{UUID: s.UUID, Accepted: true, State: message.StatePending, Term: 1}
		switch {
		case seen[s.UUID] && m.again.Error != "":
			reply = message.SubmitReply{Error: m.again.Error, Temporary: true}
		case seen[s.UUID] && m.again.State != "":
			reply.Duplicate, reply.State, reply.Result = true, m.again.State, m.again.Result
		}
		seen[s.UUID] = true
		return reply
	})
	answer(t, b, message.SubjectGet, func(body []byte) any {
		var r message.GetRequest
		_ = json.Unmarshal(body, &r)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gets++
		ti := m.info
		ti.UUID = r.UUID
		return ti
	})
	return m
}

func result(id, kind, errText, value string) message.Result {
	now := message.NewTimestamp(time.Now())
	r := message.Result{UUID: id, Executor: "w-00000000", Kind: kind, Error: errText, Start: now, Finish: now, Term: 1, Attempt: 1}
	if errText == "" {
		r.Result = json.RawMessage(value)
	}
	return r
}

func publish(t *testing.T, b *broker.Broker, r message.Result) {
	t.Helper()
	if err := b.Conn().Publish(message.SubjectResults, r.AppendJSON(nil)); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

// submitted starts a client following results and submits one task of
// kind k.
func submitted(t *testing.T, b *broker.Broker) (*client.Client, string) {
	t.Helper()
	c := dial(t, b)
	if err := c.Follow(); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Submit(t.Context(), message.Submit{Kind: "k", Payload: json.RawMessage("1")})
	if err != nil {
		t.Fatal(err)
	}
	return c, reply.UUID
}

type waited struct {
	res message.Result
	err error
}

func waitFor(ctx context.Context, c *client.Client, id string) chan waited {
	done := make(chan waited, 1)
	go func() {
		res, err := c.Wait(ctx, id)
		done <- waited{res, err}
	}()
	return done
}

// A failed attempt's result is not the end while the master says the task
// is retrying: Wait returns the next attempt's result.
func TestWaitGoesOnWhileTheTaskIsRetrying(t *testing.T) {
	b := startNATS(t)
	m := startRetryingMaster(t, b)
	m.set(message.SubmitReply{}, message.TaskInfo{State: message.StateRetrying, Attempts: 1, MaxAttempts: 3})
	c, id := submitted(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := waitFor(ctx, c, id)
	publish(t, b, result(id, "k", "attempt 1 broke", ""))
	deadline := time.Now().Add(5 * time.Second)
	for m.asked() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the fake's count, with a deadline
	}
	if m.asked() == 0 {
		t.Fatal("Wait did not ask the master about the failed attempt")
	}
	select {
	case w := <-done:
		t.Fatalf("Wait returned %+v, %v for a task still retrying", w.res, w.err)
	case <-time.After(200 * time.Millisecond):
	}
	publish(t, b, result(id, "k", "", `"fine"`))
	w := <-done
	if w.err != nil || string(w.res.Result) != `"fine"` || w.res.Error != "" {
		t.Fatalf("Wait = %+v, %v; want attempt 2's result", w.res, w.err)
	}
}

// When the master says the task is over, Wait returns its end: a failed
// task's last error, or ErrCancelled.
func TestWaitAsksTheMasterAfterAFailedAttempt(t *testing.T) {
	at := message.NewTimestamp(time.Now())
	recorded := result(taskID, "k", "attempt 3 broke", "")
	tests := []struct {
		name      string
		info      message.TaskInfo
		wantErr   error
		wantError string // the result's Error
	}{
		{"failed with a result", message.TaskInfo{State: message.StateFailed, Result: &recorded}, nil, "attempt 3 broke"},
		{"failed without a result", message.TaskInfo{State: message.StateFailed, Kind: "k", Errors: []message.AttemptError{
			{Attempt: 1, Executor: "w-1", Error: "first", At: at}, {Attempt: 2, Executor: "w-2", Error: "timed out", At: at}}}, nil, "timed out"},
		{"cancelled", message.TaskInfo{State: message.StateCancelled, Kind: "k"}, client.ErrCancelled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startNATS(t)
			m := startRetryingMaster(t, b)
			m.set(message.SubmitReply{}, tt.info)
			c, id := submitted(t, b)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			done := waitFor(ctx, c, id)
			publish(t, b, result(id, "k", "an attempt broke", ""))
			w := <-done
			if !errors.Is(w.err, tt.wantErr) || tt.wantErr == nil && w.err != nil {
				t.Fatalf("err = %v, want %v", w.err, tt.wantErr)
			}
			if w.res.Error != tt.wantError {
				t.Fatalf("result error %q, want %q", w.res.Error, tt.wantError)
			}
		})
	}
}

// The periodic asking again follows the same rule: a re-submission
// answered failed or cancelled ends the wait, one answered retrying does
// not.
func TestWaitAskingAgainReturnsOnlyAnEnd(t *testing.T) {
	failed := result(taskID, "k", "gave up", "")
	tests := []struct {
		name      string
		again     message.SubmitReply
		wantErr   error
		wantError string
	}{
		{"failed", message.SubmitReply{State: message.StateFailed, Result: &failed}, nil, "gave up"},
		{"cancelled", message.SubmitReply{State: message.StateCancelled}, client.ErrCancelled, ""},
		{"retrying", message.SubmitReply{State: message.StateRetrying}, context.DeadlineExceeded, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startNATS(t)
			m := startRetryingMaster(t, b)
			m.set(tt.again, message.TaskInfo{State: message.StateRetrying})
			c, id := submitted(t, b)
			ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
			defer cancel()
			res, err := c.Wait(ctx, id)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if res.Error != tt.wantError {
				t.Fatalf("result error %q, want %q", res.Error, tt.wantError)
			}
		})
	}
}

// A submitter at its bound has its re-submissions refused as temporary,
// which tells nothing of the task: Wait asks with Get instead.
func TestWaitAsksWithGetWhenAskingAgainIsRefused(t *testing.T) {
	b := startNATS(t)
	m := startRetryingMaster(t, b)
	done := result(taskID, "k", "", `"fine"`)
	m.set(message.SubmitReply{Error: "busy: submitter alice holds 2 unfinished tasks (--max-pending-per-submitter 2); try again later"},
		message.TaskInfo{State: message.StateDone, Kind: "k", Result: &done})
	c, id := submitted(t, b)
	c.RequestTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := c.Wait(ctx, id) // no result is published: only the master knows
	if err != nil || string(res.Result) != `"fine"` || m.asked() == 0 {
		t.Fatalf("Wait = %+v, %v after %d gets; want the result Get answers", res, err, m.asked())
	}
}
