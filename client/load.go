package client

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meshpool/meshpool/message"
)

// LoadReport says what happened to a batch of submissions.
type LoadReport struct {
	Submitted     int           `json:"submitted"`
	Accepted      int           `json:"accepted"`
	Duplicates    int           `json:"duplicate_answers"` // accepted earlier, answer lost, resubmitted
	Refused       int           `json:"refused"`
	NoMaster      int           `json:"no_master"`
	Results       int           `json:"results"`            // accepted tasks over: a result, or cancelled
	Missing       int           `json:"missing"`            // accepted tasks without a result by the deadline
	ExtraSeen     int           `json:"results_seen_again"` // results on the subject for a uuid seen before
	Took          time.Duration `json:"took_ns"`
	AcceptedUUIDs []string      `json:"-"` // the uuids of the accepted tasks
}

// LoadSpec says what Load submits.
type LoadSpec struct {
	N           int // tasks to submit
	Concurrency int // submissions (or batches) in flight at once
	// Batch submits this many tasks per request (SubmitMany); 0 or 1: one
	// per request (Submit).
	Batch      int
	Wait       bool   // wait until every accepted task has a result
	Durability string // of every task: "" or message.DurabilityDurable, or message.DurabilityNone
	// Kind and Payload are every task's; with no Kind, each is a demo task
	// of a random number.
	Kind    string
	Payload json.RawMessage
	// Options are every task's.
	Options message.Options
}

// Load submits spec.N tasks with up to spec.Concurrency in flight and, when
// spec.Wait is set, waits until every accepted task has a result or ctx
// ends.
func (c *Client) Load(ctx context.Context, spec LoadSpec) (LoadReport, error) {
	n, concurrency, wait := spec.N, spec.Concurrency, spec.Wait
	if err := c.Follow(); err != nil {
		return LoadReport{}, err
	}
	start := time.Now()
	var (
		mu  sync.Mutex
		rep LoadReport
		wg  sync.WaitGroup
	)
	// A job is a number of tasks to submit in one request.
	jobs := make(chan int)
	count := func(replies []message.SubmitReply, errs []error) {
		mu.Lock()
		defer mu.Unlock()
		for i, reply := range replies {
			rep.Submitted++
			switch err := errs[i]; {
			case err == nil:
				rep.Accepted++
				rep.AcceptedUUIDs = append(rep.AcceptedUUIDs, reply.UUID)
				if reply.Duplicate {
					rep.Duplicates++
				}
			case errors.Is(err, ErrNoMaster):
				rep.NoMaster++
			default:
				rep.Refused++
			}
		}
	}
	for range max(concurrency, 1) {
		wg.Go(func() {
			for n := range jobs {
				subs := make([]message.Submit, n)
				for i := range subs {
					subs[i] = message.Submit{Kind: spec.Kind, Payload: spec.Payload, Durability: spec.Durability, Options: spec.Options}
					if spec.Kind == "" {
						subs[i].Number = rand.Int64N(1000)
					}
				}
				if spec.Batch <= 1 {
					reply, err := c.Submit(ctx, subs[0])
					count([]message.SubmitReply{reply}, []error{err})
					continue
				}
				replies, _ := c.SubmitMany(ctx, subs)
				errs := make([]error, len(replies))
				for i, r := range replies {
					errs[i] = replyError(r)
				}
				count(replies, errs)
			}
		})
	}
	for left := n; left > 0; left -= max(spec.Batch, 1) {
		select {
		case jobs <- min(max(spec.Batch, 1), left):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if wait {
		c.waitAll(ctx, rep.AcceptedUUIDs)
	}
	rep.Missing = c.missing(rep.AcceptedUUIDs)
	rep.Results = rep.Accepted - rep.Missing
	_, rep.ExtraSeen = c.Results()
	rep.Took = time.Since(start)
	return rep, nil
}

// waitAll waits until every id has a result or ctx ends. A publication on
// results may miss this client (see Wait): after a second without a new
// result it asks the master again for the missing ones.
func (c *Client) waitAll(ctx context.Context, ids []string) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	missing, progress := c.missing(ids), time.Now()
	for missing > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		switch m := c.missing(ids); {
		case m < missing:
			missing, progress = m, time.Now()
		case time.Since(progress) > time.Second:
			c.askMissing(ctx, ids)
			missing, progress = c.missing(ids), time.Now()
		}
	}
}

// askMissing asks the master again for the ids without a result.
func (c *Client) askMissing(ctx context.Context, ids []string) {
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if !c.HasResult(id) {
			c.askAgain(ctx, id)
		}
	}
}

func (c *Client) missing(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := c.ends[id]; !ok {
			n++
		}
	}
	return n
}

// replyError is what Submit would have returned with r: nil when it
// accepts, else the error of its kind (see SubmitMany).
func replyError(r message.SubmitReply) error {
	switch {
	case r.Accepted:
		return nil
	case r.Error == "":
		return ErrNoMaster
	case r.Temporary:
		return ErrNotAccepted
	default:
		return ErrRefused
	}
}
