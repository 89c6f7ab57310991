package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/message"
)

// maxBatchBytes bounds the body of one batch request, well under the
// servers' max_payload (message.MaxSize): a submission larger than this
// goes alone.
const maxBatchBytes = 1 << 20

// SubmitMany submits subs in batches: each batch (at most
// message.MaxBatch submissions and about a MiB) is one request, answered
// once, its new durable tasks recorded together by the master. It is
// Submit for many tasks, at a fraction of the cost per task: submissions
// without a uuid get one, and those refused as temporary, or not answered,
// are sent again under the same uuids until they are accepted or ctx
// ends. The batches go one after another; call SubmitMany from several
// goroutines for more in flight.
//
// The answers are in the order of subs, one each. err is nil when every
// submission was accepted (duplicates included); else it says how many
// were not and matches ErrRefused when a master refused some for good,
// ErrNotAccepted when some had only temporary refusals, and ErrNoMaster
// when some had no answer at all (an answer then has only the uuid).
func (c *Client) SubmitMany(ctx context.Context, subs []message.Submit) ([]message.SubmitReply, error) {
	subs = slices.Clone(subs)
	replies := make([]message.SubmitReply, len(subs))
	todo := make([]int, len(subs))
	c.mu.Lock()
	for i := range subs {
		if subs[i].UUID == "" {
			subs[i].UUID = uuid.NewString()
		}
		subs[i].UUID = message.CanonicalUUID(subs[i].UUID)
		replies[i].UUID = subs[i].UUID
		c.sent[subs[i].UUID] = subs[i]
		todo[i] = i
	}
	c.mu.Unlock()
	backoff := 50 * time.Millisecond
	for len(todo) > 0 && ctx.Err() == nil {
		var again []int // refused as temporary or not answered
		for _, batch := range batches(subs, todo) {
			if ctx.Err() != nil {
				again = append(again, batch...)
				continue
			}
			retry, err := c.submitBatch(ctx, subs, batch, replies)
			if err != nil {
				return replies, err
			}
			again = append(again, retry...)
		}
		todo = again
		if len(todo) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
	return replies, batchError(replies)
}

// submitBatch sends subs[batch] as one request and fills their replies.
// It returns those to send again: refused as temporary, or all of them
// when no answer came. An answer that is not one is an error.
func (c *Client) submitBatch(ctx context.Context, subs []message.Submit, batch []int, replies []message.SubmitReply) (again []int, err error) {
	these := make([]message.Submit, len(batch))
	for k, i := range batch {
		these[k] = subs[i]
	}
	body := message.AppendSubmitBatch(make([]byte, 0, 256*len(batch)), these)
	rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	msg, err := c.nc.RequestWithContext(rctx, c.submitTo, body)
	cancel()
	if err != nil {
		return batch, nil // no master right now, or the answer was lost
	}
	rs, whole, err := message.DecodeSubmitReplies(msg.Data, len(batch))
	if err != nil {
		return nil, fmt.Errorf("client: bad answer to a batch: %w", err)
	}
	for k, i := range batch {
		r := whole
		if rs != nil {
			r = rs[k]
		}
		switch {
		case r.Accepted && r.UUID != subs[i].UUID:
			return nil, fmt.Errorf("client: bad answer to a batch: accepted uuid %q at %d, submitted %q", r.UUID, k, subs[i].UUID)
		case r.UUID == "":
			r.UUID = subs[i].UUID
		}
		replies[i] = r
		if !r.Accepted && r.Temporary {
			again = append(again, i)
		}
	}
	return again, nil
}

// batches cuts todo, indices into subs, into batches of at most
// message.MaxBatch submissions and about maxBatchBytes of JSON each.
func batches(subs []message.Submit, todo []int) [][]int {
	return message.SplitBatch(todo, func(i int) int { return 64 + len(subs[i].Payload) }, maxBatchBytes) // 64: the envelope, about
}

// batchError says how many replies do not accept their submission, by
// kind, or nil when all do.
func batchError(replies []message.SubmitReply) error {
	var refused, temporary, unanswered int
	var first, last string
	for _, r := range replies {
		switch err := replyError(r); {
		case err == nil:
		case errors.Is(err, ErrNoMaster):
			unanswered++
		case errors.Is(err, ErrNotAccepted):
			temporary++
			last = r.Error
		default:
			if refused == 0 {
				first = r.Error
			}
			refused++
		}
	}
	var formats []string
	var args []any
	if refused > 0 {
		formats, args = append(formats, "%w: %d (the first: %s)"), append(args, ErrRefused, refused, first)
	}
	if temporary > 0 {
		formats, args = append(formats, "%w: %d after temporary refusals (the last: %s)"), append(args, ErrNotAccepted, temporary, last)
	}
	if unanswered > 0 {
		formats, args = append(formats, "%w: %d"), append(args, ErrNoMaster, unanswered)
	}
	if len(formats) == 0 {
		return nil
	}
	args = append([]any{refused + temporary + unanswered, len(replies)}, args...)
	return fmt.Errorf("client: %d of %d submissions not accepted: "+strings.Join(formats, "; "), args...)
}
