package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

// answer makes subject answered by do, with the request's body.
func answer(t *testing.T, b *broker.Broker, subject string, do func(body []byte) any) {
	t.Helper()
	if _, err := b.Conn().Subscribe(subject, func(m *nats.Msg) {
		body, err := json.Marshal(do(m.Data))
		if err != nil {
			t.Error(err)
			return
		}
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, b *broker.Broker) *client.Client {
	t.Helper()
	c, err := client.Dial(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

const taskID = "0b1e5f3c-4a9e-4d6b-9a61-0c3f1f6d2e01"

// operations are the client's operations, each with the subject it asks
// on and the body it sends.
var operations = []struct {
	name, subject, body string
	call                func(context.Context, *client.Client) error
}{
	{"get", message.SubjectGet, `{"uuid":"` + taskID + `"}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.Get(ctx, strings.ToUpper(taskID))
		return err
	}},
	{"list", message.SubjectList, `{"state":"failed","kind":"k","limit":5}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.List(ctx, message.ListRequest{State: message.StateFailed, Kind: "k", Limit: 5})
		return err
	}},
	{"cancel", message.SubjectCancel, `{"uuid":"` + taskID + `"}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.Cancel(ctx, taskID)
		return err
	}},
	{"retry one", message.SubjectRetry, `{"uuid":"` + taskID + `"}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.Retry(ctx, message.RetryRequest{UUID: taskID})
		return err
	}},
	{"retry failed", message.SubjectRetry, `{"state":"failed","limit":3}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.Retry(ctx, message.RetryRequest{State: message.StateFailed, Limit: 3})
		return err
	}},
	{"add schedule", message.SubjectScheduleAdd, `{"name":"n","cron":"@hourly","kind":"k","payload":null,"priority":2}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.AddSchedule(ctx, schedule.Schedule{Name: "n", Cron: "@hourly", Kind: "k", Options: message.Options{Priority: 2}})
		return err
	}},
	{"remove schedule", message.SubjectScheduleRemove, `{"name":"n"}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.RemoveSchedule(ctx, "n")
		return err
	}},
	{"list schedules", message.SubjectScheduleList, `{}`, func(ctx context.Context, c *client.Client) error {
		_, err := c.Schedules(ctx)
		return err
	}},
}

// Each operation asks on its subject with its request, and comes back
// with the master's error as ErrFailed.
func TestOperationsSendTheirRequestAndReturnTheMastersError(t *testing.T) {
	b := startNATS(t)
	c := dial(t, b)
	for _, op := range operations {
		t.Run(op.name, func(t *testing.T) {
			got := make(chan string, 10)
			sub, err := b.Conn().Subscribe(op.subject, func(m *nats.Msg) {
				got <- string(m.Data)
				_ = m.Respond([]byte(`{"error":"no such thing"}`))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			if err := b.Conn().Flush(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err = op.call(ctx, c)
			if !errors.Is(err, client.ErrFailed) || !strings.Contains(err.Error(), "no such thing") {
				t.Errorf("err = %v, want ErrFailed with the master's text", err)
			}
			if body := <-got; body != op.body {
				t.Errorf("sent %s, want %s", body, op.body)
			}
			if len(got) != 0 {
				t.Errorf("asked %d times more: an error that is not temporary is not asked again", len(got))
			}
		})
	}
}

func TestOperationsWithNoMasterAreErrNoMaster(t *testing.T) {
	b := startNATS(t)
	c := dial(t, b)
	for _, op := range operations {
		t.Run(op.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := op.call(ctx, c); !errors.Is(err, client.ErrNoMaster) {
				t.Fatalf("err = %v, want ErrNoMaster", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("gave up after %s, past the deadline", took)
			}
		})
	}
}

// A temporary answer is asked again, until a real one.
func TestOperationsRetryTemporaryAnswers(t *testing.T) {
	b := startNATS(t)
	var asked atomic.Int32
	answer(t, b, message.SubjectGet, func([]byte) any {
		if asked.Add(1) < 3 {
			return message.TaskInfo{Error: "busy: too many operations in progress", Temporary: true}
		}
		return message.TaskInfo{UUID: taskID, State: message.StateRetrying, Attempts: 2, MaxAttempts: 5}
	})
	c := dial(t, b)
	ti, err := c.Get(t.Context(), taskID)
	if err != nil || ti.State != message.StateRetrying || ti.Attempts != 2 {
		t.Fatalf("Get = %+v, %v", ti, err)
	}
	if n := asked.Load(); n != 3 {
		t.Fatalf("asked %d times, want 3", n)
	}
}

// Temporary answers until the deadline are ErrNotAccepted with the last
// answer's reason, not ErrNoMaster.
func TestOperationsTemporaryUntilTheDeadlineAreErrNotAccepted(t *testing.T) {
	b := startNATS(t)
	answer(t, b, message.SubjectList, func([]byte) any {
		return message.ListReply{Error: "busy: another listing is reading etcd; try again", Temporary: true}
	})
	c := dial(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := c.List(ctx, message.ListRequest{})
	if !errors.Is(err, client.ErrNotAccepted) || !strings.Contains(err.Error(), "last answer: busy: another listing") {
		t.Fatalf("err = %v, want ErrNotAccepted with the last answer", err)
	}
}

func TestListAndSchedulesDecodeTheAnswer(t *testing.T) {
	b := startNATS(t)
	next := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	answer(t, b, message.SubjectList, func([]byte) any {
		return message.ListReply{Tasks: []message.TaskInfo{{UUID: taskID, State: message.StateFailed, Attempts: 3}}, More: true}
	})
	answer(t, b, message.SubjectScheduleList, func([]byte) any {
		return schedule.Reply{Schedules: []schedule.Entry{{Schedule: schedule.Schedule{Name: "n", Cron: "@hourly", Kind: "k"}, Next: next}}}
	})
	c := dial(t, b)
	list, err := c.List(t.Context(), message.ListRequest{})
	if err != nil || !list.More || len(list.Tasks) != 1 || list.Tasks[0].Attempts != 3 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	entries, err := c.Schedules(t.Context())
	if err != nil || len(entries) != 1 || entries[0].Name != "n" || !entries[0].Next.Equal(next) {
		t.Fatalf("Schedules = %+v, %v", entries, err)
	}
}
