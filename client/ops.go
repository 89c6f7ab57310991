package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

// The operations on tasks and schedules: each is one request the master
// answers (message.SubjectGet, …; schedule's API), sent by request.

// Get returns what the master knows of task id: its state, attempts,
// errors and result.
func (c *Client) Get(ctx context.Context, id string) (message.TaskInfo, error) {
	return request[message.TaskInfo](ctx, c, message.SubjectGet, message.GetRequest{UUID: message.CanonicalUUID(id)})
}

// List returns the tasks in req.State of req.Kind (each optional), newest
// first, at most req.Limit; the reply's More says there are more.
func (c *Client) List(ctx context.Context, req message.ListRequest) (message.ListReply, error) {
	return request[message.ListReply](ctx, c, message.SubjectList, req)
}

// Cancel cancels task id: pending, retrying or running, it is recorded
// cancelled and never runs again. A final task is not cancelled: the error
// (ErrFailed) says so, and the TaskInfo returned says its state.
func (c *Client) Cancel(ctx context.Context, id string) (message.TaskInfo, error) {
	return request[message.TaskInfo](ctx, c, message.SubjectCancel, message.CancelRequest{UUID: message.CanonicalUUID(id)})
}

// Retry makes failed or cancelled tasks pending again with fresh attempts:
// the one named by req.UUID, or those in req.State (of req.Kind) up to
// req.Limit. The reply lists the tasks retried, also with an error that
// stopped the rest.
func (c *Client) Retry(ctx context.Context, req message.RetryRequest) (message.RetryReply, error) {
	req.UUID = message.CanonicalUUID(req.UUID)
	return request[message.RetryReply](ctx, c, message.SubjectRetry, req)
}

// AddSchedule adds s (Created and Last are the master's to set); the
// reply holds the schedule added.
func (c *Client) AddSchedule(ctx context.Context, s schedule.Schedule) (schedule.Reply, error) {
	return request[schedule.Reply](ctx, c, message.SubjectScheduleAdd, s)
}

// RemoveSchedule removes the schedule called name; the reply holds it.
func (c *Client) RemoveSchedule(ctx context.Context, name string) (schedule.Reply, error) {
	return request[schedule.Reply](ctx, c, message.SubjectScheduleRemove, schedule.Request{Name: name})
}

// Schedules lists the schedules, each with when it fires next.
func (c *Client) Schedules(ctx context.Context) ([]schedule.Entry, error) {
	reply, err := request[schedule.Reply](ctx, c, message.SubjectScheduleList, schedule.Request{})
	return reply.Schedules, err
}

// status is what every answer to an operation carries besides its own
// fields: why it failed, and whether the same request may succeed.
type status struct {
	Error     string `json:"error"`
	Temporary bool   `json:"temporary"`
}

// request sends req on subject until an answer that is not temporary, or
// ctx ends: each try is bounded by c.RequestTimeout and the tries are
// spaced as Submit's. An answer with an error is returned with ErrFailed
// and the master's text. When ctx ends after temporary answers the error
// is ErrNotAccepted with the last one's text; when nobody answered at
// all, ErrNoMaster.
func request[R any](ctx context.Context, c *Client, subject string, req any) (R, error) {
	var zero R
	body, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("client: %s: %w", subject, err)
	}
	backoff := 50 * time.Millisecond
	start, tries := time.Now(), 0
	var temporary *status // the last temporary answer
	for {
		tries++
		rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
		msg, err := c.nc.RequestWithContext(rctx, subject, body)
		cancel()
		switch {
		case err == nil:
			reply, st, err := decodeAnswer[R](msg.Data)
			switch {
			case err != nil:
				return zero, fmt.Errorf("client: %s: bad answer: %w", subject, err)
			case st.Error == "":
				return reply, nil
			case !st.Temporary:
				return reply, fmt.Errorf("%w: %s", ErrFailed, st.Error)
			}
			temporary = &st
		case errors.Is(err, nats.ErrConnectionClosed):
			return zero, fmt.Errorf("client: %s: %w", subject, err)
		}
		// No master right now, a temporary answer, or an answer lost: try
		// again.
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
		if ctx.Err() != nil {
			if temporary != nil {
				return zero, fmt.Errorf("%w: %s after %d tries over %s: last answer: %s",
					ErrNotAccepted, subject, tries, time.Since(start).Round(100*time.Millisecond), temporary.Error)
			}
			return zero, fmt.Errorf("%w on %s", ErrNoMaster, subject)
		}
	}
}

// decodeAnswer parses an answer, at most message.MaxSize bytes, into an R
// and its status.
func decodeAnswer[R any](data []byte) (R, status, error) {
	var reply R
	var st status
	if len(data) > message.MaxSize {
		return reply, st, fmt.Errorf("%w: %d bytes, limit %d", message.ErrTooLarge, len(data), message.MaxSize)
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return reply, st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return reply, st, err
	}
	return reply, st, nil
}
