package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// reassign, on a membership change, gives the tasks of workers that left to
// others, and places at once the tasks not placed yet (no worker took them,
// or there was none), whatever their back-off.
func (m *master) reassign(mem registry.Membership) {
	var orphans, unplaced []*tracked
	canPlace := m.table.hasWorkers()
	m.table.claimEach(func(t *tracked) bool {
		if t.result != nil {
			return false
		}
		t.retryAt, t.failures = time.Time{}, 0
		if !canPlace {
			return false
		}
		_, member := mem.Lookup(t.rec.Executor)
		switch {
		case t.rec.Executor != "" && !member:
			orphans = append(orphans, t)
		case t.queued != nil: // placed as slots free (dispatch)
			return false
		case t.sent.IsZero():
			unplaced = append(unplaced, t)
		default:
			return false
		}
		return true
	})
	for _, t := range orphans {
		m.log.Info("worker left, giving its task to another", "uuid", t.rec.UUID, "worker", t.rec.Executor)
		m.placeAsync(t, "", t.rec.Executor)
	}
	for _, t := range unplaced {
		m.placeAsync(t, m.ownWorker(mem, t), "")
	}
}

// rescue records the results whose write failed, and re-places tasks that
// are not placed, or whose worker has not answered within the task timeout.
// With no worker it places nothing (the membership change that brings one
// does), and a task no worker took waits for its back-off: 30,000 pending
// tasks cost a pass over a map, not 30,000 placements a second.
func (m *master) rescue(now time.Time) {
	var late, unrecorded []*tracked
	canPlace := m.table.hasWorkers()
	m.table.claimEach(func(t *tracked) bool {
		switch {
		case t.result != nil:
			unrecorded = append(unrecorded, t)
		case !canPlace || t.queued != nil || now.Before(t.retryAt):
			return false
		case t.sent.IsZero():
			late = append(late, t)
		case now.Sub(t.sent) >= m.taskTimeout+ResultSlack(m.taskTimeout):
			t.timedOutLocked(t.rec.Executor)
			late = append(late, t)
		default:
			return false
		}
		return true
	})
	m.table.expire(now)
	for _, t := range unrecorded {
		m.wg.Go(func() { m.record(t) })
	}
	for _, t := range late {
		exclude := ""
		if !t.sent.IsZero() {
			exclude = t.rec.Executor
			m.log.Warn("task timed out, giving it to another worker", ratelog.Limit, "uuid", t.rec.UUID, "worker", t.rec.Executor, "timeout", m.taskTimeout)
		}
		m.placeAsync(t, "", exclude)
	}
}

// dispatch places the waiting tasks for which a slot is free, oldest
// first; each is placed in the background.
func (m *master) dispatch() {
	for {
		t, w := m.table.nextWaiting()
		if t == nil {
			return
		}
		m.placeAsync(t, w, "")
	}
}

// placeAsync places t in the background; t is claimed.
func (m *master) placeAsync(t *tracked, prefer, exclude string) {
	m.wg.Go(func() { m.placeThenRecord(t, prefer, exclude) })
}

// placeNow places a task accept returned, on the worker accept chose, in
// the calling goroutine; t is claimed.
func (m *master) placeNow(t *tracked) { m.placeThenRecord(t, t.rec.Executor, "") }

func (m *master) placeThenRecord(t *tracked, prefer, exclude string) {
	err := m.place(t, prefer, exclude)
	how := sentOK
	switch {
	case errors.Is(err, errNoSlot):
		how = noSlot
		m.log.Debug("task waits for a free slot", "uuid", t.rec.UUID, "kind", t.rec.Kind)
	case err != nil:
		how = refusal
		if m.ctx.Err() == nil {
			m.log.Debug("task not placed, will retry", "uuid", t.rec.UUID, "err", err)
		}
	}
	if m.table.placed(t, how, time.Now()) {
		m.record(t) // its result came in while it was being placed
	}
}

// errTryNext means a worker did not take a task and the next may.
var errTryNext = errors.New("worker did not take the task")

// errNoSlot means no worker that runs the task's kind has a free slot.
var errNoSlot = errors.New("no worker has a free slot for the task")

// place hands t to a worker: prefer first if given (its current worker, so
// no new record is needed; or the worker dispatch reserved), then the
// least busy others that run its kind and have a free slot, except
// exclude. It returns errNoSlot when there is none to try at all, and
// errNoWorker when every one tried refused.
func (m *master) place(t *tracked, prefer, exclude string) error {
	var tried []string
	if prefer != "" {
		m.table.reserveOn(t, prefer)
		if err := m.placeOn(t, prefer); !errors.Is(err, errTryNext) {
			return err
		}
		tried = append(tried, prefer)
	}
	for {
		w := m.table.reserve(t, exclude, tried)
		switch {
		case w == "" && len(tried) == 0:
			return errNoSlot
		case w == "":
			return errNoWorker
		}
		if err := m.placeOn(t, w); !errors.Is(err, errTryNext) {
			return err
		}
		tried = append(tried, w)
	}
}

// placeOn sends t to worker w. A change of worker is recorded before the
// task is sent, so a new master knows where every task went. It returns
// an error wrapping errTryNext when w did not take the task.
func (m *master) placeOn(t *tracked, w string) error {
	if !m.lead.Valid() || m.ctx.Err() != nil {
		return errNotLeading
	}
	rec, placedBefore, doneMeanwhile := m.table.current(t)
	if doneMeanwhile {
		return nil // it is recorded when we return
	}
	rec.Attempts++ // this sending's attempt, 1-based
	if rec.Executor != w || rec.Term != m.term {
		rec.Executor, rec.Term = w, m.term
		if !t.ephemeral {
			if err := m.records.Put(m.ctx, rec); err != nil {
				if errors.Is(err, taskstore.ErrFenced) {
					return errNotLeading
				}
				m.stats.recordFailures.Add(1)
				return fmt.Errorf("cannot record the new worker: %w", err)
			}
		}
		m.table.moved(t, w, m.term)
	}
	// The sending counts as made before it is sent: its result may come
	// even when the ack does not.
	m.table.sending(t, w, rec.Attempts)
	if err := m.sendRecord(rec, t.ephemeral); err != nil {
		m.log.Debug("worker did not take the task", "uuid", rec.UUID, "worker", w, "err", err)
		return fmt.Errorf("%w: %w", errTryNext, err)
	}
	m.table.sentAt(t, time.Now())
	m.stats.dispatched.Add(1)
	if placedBefore {
		m.stats.redispatched.Add(1)
	}
	m.log.Info("task sent", "uuid", rec.UUID, "executor", w, "kind", rec.Kind)
	return nil
}

// sendRecord sends rec to its executor as this term's task.
func (m *master) sendRecord(rec taskstore.Record, ephemeral bool) error {
	task := message.Task{UUID: rec.UUID, Executor: rec.Executor, Kind: rec.Kind, Payload: rec.Payload, Number: rec.Number, Term: m.term, Attempt: int64(rec.Attempts)}
	return m.send(m.ctx, task, ephemeral)
}

// natsSender sends tasks over NATS. A durable task is sent as a request and
// counts as sent when the worker acks it; an ephemeral one is only
// published, one message fewer per task. Like a request, the publication
// goes only where the worker's subscription is known (a worker that has
// just joined may not be yet): else the next worker is tried. If the worker
// goes away after that, the task is re-placed when the worker leaves the
// membership or the task times out.
type natsSender struct {
	conn        *nats.Conn
	hasInterest func(subject string) bool // whether anyone subscribes to subject (broker.HasInterest)
	ackTimeout  time.Duration
	log         *slog.Logger
}

func (s natsSender) send(ctx context.Context, task message.Task, ephemeral bool) error {
	subject := message.TaskSubject(task.Executor)
	body := task.AppendJSON(make([]byte, 0, 192+len(task.Payload)))
	if ephemeral {
		if s.hasInterest != nil && !s.hasInterest(subject) {
			return nats.ErrNoResponders
		}
		return s.conn.Publish(subject, body)
	}
	rctx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	reply, err := s.conn.RequestWithContext(rctx, subject, body)
	if err != nil {
		return err
	}
	ack, err := message.DecodeAck(reply.Data)
	if err != nil {
		return fmt.Errorf("bad ack: %w", err)
	}
	if !ack.Accepted {
		if ack.Term > task.Term {
			s.log.Warn("a worker has seen a newer term than ours", ratelog.Limit, "worker", task.Executor, "ours", task.Term, "theirs", ack.Term)
		}
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	return nil
}
