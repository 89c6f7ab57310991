// Package client submits tasks to a meshpool cluster over NATS and follows
// their results. Submissions are idempotent by uuid, so a submission whose
// answer was lost (no master during a fail-over, a timeout) is simply sent
// again with the same uuid until the deadline.
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

// Errors, for errors.Is.
var (
	// ErrNoMaster: nobody answered on tasks.submit until the deadline.
	ErrNoMaster = errors.New("client: no master answered")
	// ErrRefused: the master answered and did not accept the task.
	ErrRefused = errors.New("client: task refused")
	// ErrNotAccepted: a master answered, but only with temporary refusals
	// (nothing recorded, try again), until the deadline. The error names
	// the last answer's reason.
	ErrNotAccepted = errors.New("client: not accepted")
)

// Client talks to one cluster through one NATS connection.
type Client struct {
	nc *nats.Conn
	// RequestTimeout bounds one attempt; Submit retries until its ctx ends.
	RequestTimeout time.Duration

	mu      sync.Mutex
	sub     *nats.Subscription
	waiters map[string]chan message.Result
	results map[string]message.Result // every result seen, first one kept
	dups    int                       // results seen again for a uuid
	sent    map[string]message.Submit // what was submitted, to ask again in Wait
}

// Dial connects to the cluster at url (any node's client URL). The
// connection reconnects forever, since any node will do.
func Dial(url string, opts ...nats.Option) (*Client, error) {
	opts = append([]nats.Option{nats.Name("meshpool client"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: cannot connect to %s: %w", url, err)
	}
	return &Client{nc: nc, RequestTimeout: 2 * time.Second, waiters: map[string]chan message.Result{},
		sent: map[string]message.Submit{}}, nil
}

// Close closes the connection.
func (c *Client) Close() { c.nc.Close() }

// Follow subscribes to results; Submit's results are only seen after it.
func (c *Client) Follow() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sub != nil {
		return nil
	}
	c.results = map[string]message.Result{}
	sub, err := c.nc.Subscribe(message.SubjectResults, c.onResult)
	if err != nil {
		return fmt.Errorf("client: cannot subscribe to results: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	c.sub = sub
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("client: cannot subscribe to results: %w", err)
	}
	return nil
}

func (c *Client) onResult(msg *nats.Msg) {
	res, err := message.DecodeResult(msg.Data)
	if err != nil || res.Kind == message.KindTriple && res.Error == "" && !message.IsTripleResult(res.Number, res.Result) {
		return
	}
	c.mu.Lock()
	sub, sent := c.sent[res.UUID]
	c.mu.Unlock()
	kind := sub.Kind
	if kind == "" {
		kind = message.KindTriple
	}
	if sent && (kind != res.Kind || kind == message.KindTriple && sub.Number != res.Number) {
		// Not an answer to what was submitted: anyone may publish on
		// results in an open cluster, and the master records no such
		// result. The master's own answer (Wait asks it) is the real one.
		return
	}
	c.keep(res, true)
}

// keep records a result; one seen again on the subject counts as a duplicate.
func (c *Client) keep(res message.Result, published bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.results[res.UUID]; seen {
		if published {
			c.dups++
		}
		return
	}
	c.results[res.UUID] = res
	if ch, ok := c.waiters[res.UUID]; ok {
		ch <- res
		delete(c.waiters, res.UUID)
	}
}

// Submit sends sub until a master answers or ctx ends. Without a uuid one is
// made, so retries are idempotent. An answer that does not accept the task
// is returned with ErrRefused; a temporary refusal is tried again, and when
// ctx ends after one, Submit returns the last with ErrNotAccepted. When no
// master answered at all, the error is ErrNoMaster.
func (c *Client) Submit(ctx context.Context, sub message.Submit) (message.SubmitReply, error) {
	if sub.UUID == "" {
		sub.UUID = uuid.NewString()
	}
	sub.UUID = message.CanonicalUUID(sub.UUID) // the master's form: results and Wait use it
	body := sub.AppendJSON(nil)
	c.mu.Lock()
	c.sent[sub.UUID] = sub
	c.mu.Unlock()
	backoff := 50 * time.Millisecond
	start, tries := time.Now(), 0
	var temporary *message.SubmitReply // the last temporary refusal
	notAccepted := func() (message.SubmitReply, error) {
		return *temporary, fmt.Errorf("%w after %d tries over %s: last answer: %s",
			ErrNotAccepted, tries, time.Since(start).Round(100*time.Millisecond), temporary.Error)
	}
	for {
		tries++
		rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
		msg, err := c.nc.RequestWithContext(rctx, message.SubjectSubmit, body)
		cancel()
		if err == nil {
			reply, err := message.DecodeSubmitReply(msg.Data)
			if err != nil {
				return reply, fmt.Errorf("client: bad answer: %w", err)
			}
			if reply.Accepted {
				if reply.UUID != sub.UUID {
					return reply, fmt.Errorf("client: bad answer: accepted uuid %q, submitted %q", reply.UUID, sub.UUID)
				}
				return reply, nil
			}
			if !reply.Temporary {
				return reply, fmt.Errorf("%w: %s", ErrRefused, reply.Error)
			}
			// Nothing was recorded; the same submission may succeed soon.
			temporary = &reply
			if ctx.Err() != nil {
				return notAccepted()
			}
		}
		if err != nil && ctx.Err() != nil {
			if temporary != nil {
				return notAccepted()
			}
			if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
				return message.SubmitReply{UUID: sub.UUID}, ErrNoMaster
			}
			return message.SubmitReply{UUID: sub.UUID}, fmt.Errorf("client: %w", err)
		}
		// No master right now, a temporary refusal, or an answer lost:
		// try again.
		select {
		case <-ctx.Done():
			if temporary != nil {
				return notAccepted()
			}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Wait returns the result for id, waiting until ctx ends. Follow must have
// been called before the task was submitted. A publication on results is not
// guaranteed to reach every subscriber (a client's interest may not have
// reached the worker's server yet), so while it waits, Wait also asks the
// master again with the same uuid: a task that is done is answered with its
// result.
func (c *Client) Wait(ctx context.Context, id string) (message.Result, error) {
	id = message.CanonicalUUID(id)
	c.mu.Lock()
	if res, ok := c.results[id]; ok {
		c.mu.Unlock()
		return res, nil
	}
	ch := make(chan message.Result, 1)
	c.waiters[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	ask := time.NewTimer(time.Second)
	defer ask.Stop()
	for backoff := time.Second; ; backoff = min(2*backoff, 5*time.Second) {
		select {
		case res := <-ch:
			return res, nil
		case <-ctx.Done():
			return message.Result{}, fmt.Errorf("client: no result for %s: %w", id, ctx.Err())
		case <-ask.C:
		}
		if res, ok := c.askAgain(ctx, id); ok {
			return res, nil
		}
		ask.Reset(backoff)
	}
}

// askAgain submits id again, with one attempt: the master answers a task
// that is done with its result, which is kept as if it had been seen on
// results. It reports false for a task not done, or not submitted here.
func (c *Client) askAgain(ctx context.Context, id string) (message.Result, bool) {
	c.mu.Lock()
	sub, known := c.sent[id]
	c.mu.Unlock()
	if !known {
		return message.Result{}, false
	}
	actx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	reply, err := c.Submit(actx, sub)
	cancel()
	if err != nil || reply.Result == nil {
		return message.Result{}, false
	}
	c.keep(*reply.Result, false)
	return *reply.Result, true
}

// Results returns how many distinct results were seen and how many results
// came again for a uuid already seen.
func (c *Client) Results() (distinct, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.results), c.dups
}

// HasResult reports whether a result for id was seen.
func (c *Client) HasResult(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.results[id]
	return ok
}
