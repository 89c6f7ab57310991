// Package client submits tasks to a meshpool cluster over NATS and follows
// their results. Submissions are idempotent by uuid, so a submission whose
// answer was lost (no master during a fail-over, a timeout) is simply sent
// again with the same uuid until the deadline.
package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

// Errors, for errors.Is.
var (
	// ErrNoMaster: nobody answered until the deadline.
	ErrNoMaster = errors.New("client: no master answered")
	// ErrRefused: the master answered and did not accept the task.
	ErrRefused = errors.New("client: task refused")
	// ErrNotAccepted: a master answered, but only with temporary refusals
	// or errors (nothing done, try again), until the deadline. The error
	// names the last answer's reason.
	ErrNotAccepted = errors.New("client: not accepted")
	// ErrFailed: the master answered an operation (Get, Cancel, …) with
	// an error that trying again does not mend, such as no such task. The
	// error gives the master's text.
	ErrFailed = errors.New("client: request failed")
	// ErrCancelled: Wait's task was cancelled; it has no result.
	ErrCancelled = errors.New("client: task cancelled")
)

// Client talks to one cluster through one NATS connection.
type Client struct {
	nc *nats.Conn
	// submitTo is where Submit submits: tasks.submit.<user> as the
	// connection's NATS user, tasks.submit without one (Submitter).
	submitTo string
	// RequestTimeout bounds one attempt; Submit and the operations retry
	// until their ctx ends.
	RequestTimeout time.Duration

	mu      sync.Mutex
	sub     *nats.Subscription
	waiters map[string]chan struct{}  // told when something is seen of the uuid
	ends    map[string]end            // the tasks known to be over, the first end kept
	errs    map[string]message.Result // an attempt's error seen, the task not known to be over
	dups    int                       // results seen on the subject for a task already over
	sent    map[string]message.Submit // what was submitted, to ask again in Wait
}

// Dial connects to the cluster at url (any node's client URL). The
// connection reconnects forever, since any node will do. Its NATS user, if
// any, is who the client submits as (Submitter); logged in as a user, its
// requests' answers come to the user's own inboxes, message.InboxPrefix,
// unless opts set nats.CustomInboxPrefix: in a secure cluster those are the
// only ones it may read.
func Dial(url string, opts ...nats.Option) (*Client, error) {
	opts = append([]nats.Option{nats.Name("meshpool client"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)
	opts = append(opts, userInbox)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: cannot connect to %s: %w", url, err)
	}
	return &Client{nc: nc, submitTo: message.SubmitSubject(submitter(nc)), RequestTimeout: 2 * time.Second, waiters: map[string]chan struct{}{},
		ends: map[string]end{}, errs: map[string]message.Result{}, sent: map[string]message.Submit{}}, nil
}

// userInbox sets the inbox prefix of a user's connection to its own
// (identity's) unless its options chose one.
func userInbox(o *nats.Options) error {
	if id := identity(o); id != "" && o.InboxPrefix == "" {
		o.InboxPrefix = message.InboxPrefix(id)
	}
	return nil
}

// identity is who a connection with options o logs in as, in the order the
// server knows it: the user of its server URL (nats.go sends it instead of
// the options'), else its public nkey (nats.Nkey, nats.NkeyOptionFromSeed:
// nats-server takes an nkey before a name), else its user (nats.UserInfo);
// "" for none.
func identity(o *nats.Options) string {
	id := urlUser(o.Url)
	for _, s := range o.Servers {
		id = cmp.Or(id, urlUser(s))
	}
	return cmp.Or(id, o.Nkey, o.User)
}

// submitter is who nc submits as: its identity; "" (anonymous) with none,
// or with a name no secure cluster has (message.ValidSubmitter: an open
// cluster ignores credentials). In secure mode a submitter may submit only
// on its own subject, tasks.submit.<user>, and the master bounds what each
// one holds.
func submitter(nc *nats.Conn) string {
	user := identity(&nc.Opts)
	if message.ValidSubmitter(user) != nil {
		return ""
	}
	return user
}

// urlUser is the user a server URL authenticates as: "" for none, or for a
// token (a user without a password).
func urlUser(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.User == nil {
		return ""
	}
	if _, ok := u.User.Password(); !ok {
		return ""
	}
	return u.User.Username()
}

// Submitter is who Submit submits as (see Dial): the connection's NATS
// user name or public nkey, or "" (anonymous).
func (c *Client) Submitter() string {
	s, _ := message.SubmitterOf(c.submitTo)
	return s
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
	c.keep(res)
}

// keep records a result seen on results. One without an error ends its
// task; one with an error is an attempt's, which may be followed by
// another: Wait asks the master. A result for a task already over counts
// as a duplicate.
func (c *Client) keep(res message.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, over := c.ends[res.UUID]; over {
		c.dups++
		return
	}
	if res.Error == "" {
		c.ends[res.UUID] = end{state: message.StateDone, res: res}
		delete(c.errs, res.UUID)
	} else {
		c.errs[res.UUID] = res
	}
	c.tell(res.UUID)
}

// settle records the end of task id as the master told it; the first end
// known is kept.
func (c *Client) settle(id string, e end) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, over := c.ends[id]; over {
		return
	}
	c.ends[id] = e
	delete(c.errs, id)
	c.tell(id)
}

// tell wakes the Wait for id, if any. c.mu is held.
func (c *Client) tell(id string) {
	select {
	case c.waiters[id] <- struct{}{}: // a nil channel (no waiter) is never ready
	default: // told already
	}
}

// Submit sends sub until a master answers or ctx ends, on
// tasks.submit.<user> when the connection has a NATS user or nkey, else on
// tasks.submit (Submitter). Without a uuid one is made, so retries are
// idempotent. An answer that does not accept the task
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
		msg, err := c.nc.RequestWithContext(rctx, c.submitTo, body)
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

// Wait returns the final outcome of task id, waiting until ctx ends: the
// result of a task done, or the last result of a task failed (its Error
// set), or ErrCancelled for a task cancelled. Follow must have been called
// before the task was submitted.
//
// A result with an error may be followed by another attempt, so when one
// is seen Wait asks the master (Get) whether the task is over. And a
// publication on results is not guaranteed to reach every subscriber (a
// client's interest may not have reached the worker's server yet), so
// while it waits, Wait also asks the master again with the same uuid: a
// task that is over is answered with its state and result.
func (c *Client) Wait(ctx context.Context, id string) (message.Result, error) {
	id = message.CanonicalUUID(id)
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.waiters[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	const first = time.Second
	ask := time.NewTimer(first)
	defer ask.Stop()
	backoff := first
	for {
		if e, ok := c.end(id); ok {
			return e.outcome(id)
		}
		if c.attemptFailed(id) {
			if c.askMaster(ctx, id) {
				continue
			}
			// Not over, or not recorded yet: ask again soon.
			ask.Reset(first)
			backoff = first
		}
		select {
		case <-ch:
			continue
		case <-ctx.Done():
			return message.Result{}, fmt.Errorf("client: no result for %s: %w", id, ctx.Err())
		case <-ask.C:
		}
		c.askAgain(ctx, id)
		backoff = min(2*backoff, 5*time.Second)
		ask.Reset(backoff)
	}
}

// end returns the end of task id, if known.
func (c *Client) end(id string) (end, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ends[id]
	return e, ok
}

// attemptFailed reports, once, that a result with an error was seen for id.
func (c *Client) attemptFailed(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.errs[id]
	delete(c.errs, id)
	return ok
}

// askAgain asks the master for task id and records its end, if it is
// over: a task submitted here is submitted again with the same uuid (the
// master answers a known task with its state, and its result when done or
// failed), any other is asked for with Get.
func (c *Client) askAgain(ctx context.Context, id string) {
	c.mu.Lock()
	sub, known := c.sent[id]
	c.mu.Unlock()
	if !known {
		c.askMaster(ctx, id)
		return
	}
	actx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	reply, err := c.Submit(actx, sub)
	cancel()
	if errors.Is(err, ErrNotAccepted) {
		// Refused as temporary (its submitter holds its bound, say),
		// which a look-up is not.
		c.askMaster(ctx, id)
		return
	}
	if err != nil {
		return
	}
	ti := message.TaskInfo{UUID: id, State: reply.State, Result: reply.Result}
	if ti.State == "" && ti.Result != nil { // a master that does not say
		ti.State = message.StateDone
		if ti.Result.Error != "" {
			ti.State = message.StateFailed
		}
	}
	if ti.State == message.StateFailed && ti.Result == nil {
		c.askMaster(ctx, id) // the errors are in its TaskInfo
		return
	}
	if e, over := endOf(ti); over {
		c.settle(id, e)
	}
}

// askMaster asks the master (Get) whether task id is over, and records its
// end if it is; it reports whether it is.
func (c *Client) askMaster(ctx context.Context, id string) bool {
	actx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	ti, err := c.Get(actx, id)
	cancel()
	if err != nil {
		return false
	}
	e, over := endOf(ti)
	if over {
		c.settle(id, e)
	}
	return over
}

// end is a task's final outcome: done or failed with its result, or
// cancelled.
type end struct {
	state string
	res   message.Result
}

// outcome is what Wait returns for the end of task id.
func (e end) outcome(id string) (message.Result, error) {
	if e.state == message.StateCancelled {
		return e.res, fmt.Errorf("%w: %s", ErrCancelled, id)
	}
	return e.res, nil
}

// endOf is the end ti tells, if its task is over. A failed task without a
// result gets one made of its last error.
func endOf(ti message.TaskInfo) (end, bool) {
	switch ti.State {
	case message.StateDone:
		if ti.Result == nil {
			return end{}, false
		}
		return end{state: ti.State, res: *ti.Result}, true
	case message.StateFailed:
		if ti.Result != nil {
			return end{state: ti.State, res: *ti.Result}, true
		}
		res := message.Result{UUID: ti.UUID, Kind: ti.Kind, Executor: ti.Executor, Error: "failed"}
		if n := len(ti.Errors); n > 0 {
			last := ti.Errors[n-1]
			res.Executor, res.Error, res.Attempt, res.Finish = last.Executor, last.Error, int64(last.Attempt), last.At
		}
		return end{state: ti.State, res: res}, true
	case message.StateCancelled:
		return end{state: ti.State, res: message.Result{UUID: ti.UUID, Kind: ti.Kind}}, true
	}
	return end{}, false
}

// Results returns how many tasks are known to be over (done, failed or
// cancelled) and how many results came on the subject for a task already
// over.
func (c *Client) Results() (distinct, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ends), c.dups
}

// HasResult reports whether task id is known to be over.
func (c *Client) HasResult(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ends[id]
	return ok
}
