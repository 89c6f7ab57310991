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

// reassign, on a membership change, settles the running tasks of workers
// that left: an attempt a worker took is over (lost: retried after its
// backoff, or failed when it was the last), one it never took goes to
// another worker. It places at once the tasks not placed yet (no worker
// took them, or there was none), whatever their back-off.
func (m *master) reassign(mem registry.Membership) {
	var orphans, unplaced, lost []*tracked
	canPlace := m.table.hasWorkers()
	m.table.claimEach(func(t *tracked) bool {
		if t.result != nil || t.lost != nil {
			return false
		}
		t.retryAt, t.failures = time.Time{}, 0
		if t.rec.State != taskstore.Running {
			if t.queued != nil || t.timer != 0 || !canPlace {
				return false // waiting for a slot or a time: placed when they come
			}
			unplaced = append(unplaced, t) // its placement found no worker to take it
			return true
		}
		_, member := mem.Lookup(t.rec.Executor)
		switch {
		case !member && t.taken:
			t.lost = &failure{executor: t.rec.Executor, attempt: t.rec.Attempts,
				err: lostText(t.rec.Executor, t.rec.Attempts, "the worker left the cluster before it sent a result")}
			t.overLocked(int64(t.rec.Attempts))
			lost = append(lost, t)
		case !canPlace:
			return false
		case !member:
			orphans = append(orphans, t)
		case t.sent.IsZero():
			unplaced = append(unplaced, t)
		default:
			return false
		}
		return true
	})
	for _, t := range lost {
		m.log.Warn("worker left while running a task", ratelog.Limit, "uuid", t.rec.UUID, "worker", t.rec.Executor, "attempt", t.rec.Attempts)
		m.wg.Go(func() { m.record(t) })
	}
	for _, t := range orphans {
		m.log.Info("worker left before it took its task, giving it to another", "uuid", t.rec.UUID, "worker", t.rec.Executor)
		m.placeAsync(t, "", t.rec.Executor)
	}
	for _, t := range unplaced {
		m.placeAsync(t, m.ownWorker(mem, t), "")
	}
}

// rescue records the outcomes whose write failed, settles the attempts
// whose worker has not answered within the task's timeout (lost: retried
// or failed), and places again the tasks no worker took. With no worker it
// places nothing (the membership change that brings one does), and a task
// no worker took waits for its back-off: 30,000 pending tasks cost a pass
// over a map, not 30,000 placements a second.
func (m *master) rescue(now time.Time) {
	var late, unrecorded []*tracked
	canPlace := m.table.hasWorkers()
	m.table.claimEach(func(t *tracked) bool {
		switch {
		case t.result != nil || t.lost != nil:
			unrecorded = append(unrecorded, t)
		case t.queued != nil || t.timer != 0:
			return false // waiting for a slot or a time
		case t.rec.State != taskstore.Running && t.rec.NotBefore.After(now):
			m.table.parkLocked(t, now) // its time has not come: it waits for it
			return false
		case t.rec.State == taskstore.Running && !t.sent.IsZero():
			timeout := m.policy.timeoutOf(&t.rec)
			if now.Sub(t.sent) < timeout+ResultSlack(timeout) {
				return false
			}
			t.lost = &failure{executor: t.rec.Executor, attempt: t.rec.Attempts,
				err: lostText(t.rec.Executor, t.rec.Attempts, fmt.Sprintf("no result within the task timeout %s and %s more", timeout, ResultSlack(timeout)))}
			t.overLocked(int64(t.rec.Attempts))
			m.log.Warn("task timed out: no result from its worker", ratelog.Limit, "uuid", t.rec.UUID, "worker", t.rec.Executor,
				"attempt", t.rec.Attempts, "timeout", timeout)
			unrecorded = append(unrecorded, t)
		case !canPlace || now.Before(t.retryAt):
			return false
		default: // never taken: place it
			late = append(late, t)
		}
		return true
	})
	m.table.expire(now)
	for _, t := range unrecorded {
		m.wg.Go(func() { m.record(t) })
	}
	for _, t := range late {
		m.placeAsync(t, "", retryElsewhere(t))
	}
}

// dispatch places the waiting tasks for which a slot is free, oldest
// first, in the background: the durable ones for one worker with one
// request (placeBatchOn), the others each alone.
func (m *master) dispatch() {
	byWorker := map[string][]*tracked{}
	for {
		t, w := m.table.nextWaiting(time.Now())
		if t == nil {
			break
		}
		if t.ephemeral {
			m.placeAsync(t, w, "")
			continue
		}
		byWorker[w] = append(byWorker[w], t)
	}
	for w, ts := range byWorker {
		m.wg.Go(func() { m.placeBatchOn(w, ts) })
	}
}

// placeAsync places t in the background; t is claimed.
func (m *master) placeAsync(t *tracked, prefer, exclude string) {
	m.wg.Go(func() { m.placeThenRecord(t, prefer, exclude) })
}

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
	cur, placedBefore, doneMeanwhile := m.table.current(t)
	if doneMeanwhile {
		return nil // it is recorded when we return
	}
	rec := startAttempt(cur, w, time.Now())
	if rec.Executor != cur.Executor || rec.Attempts != cur.Attempts || cur.Term != m.term {
		rec.Term = m.term
		if !t.ephemeral {
			if err := m.records.Put(m.ctx, rec); err != nil {
				if errors.Is(err, taskstore.ErrFenced) {
					return errNotLeading
				}
				m.stats.recordFailures.Add(1)
				return fmt.Errorf("cannot record the new worker: %w", err)
			}
		}
		m.table.moved(t, rec)
	}
	// The sending counts as made before it is sent: its result may come
	// even when the ack does not. The leadership is checked again right
	// before: the process may have been stopped since the first check
	// (workers refuse a deposed term anyway).
	if !m.lead.Valid() {
		return errNotLeading
	}
	m.table.sending(t, w, rec.Attempts)
	sentAt := time.Now()
	if err := m.sendRecord(rec, t.ephemeral); err != nil {
		m.log.Debug("worker did not take the task", "uuid", rec.UUID, "worker", w, "err", err)
		return fmt.Errorf("%w: %w", errTryNext, err)
	}
	m.sent(t, rec, sentAt, time.Now(), placedBefore)
	return nil
}

// sent records that t's worker took it (acked at now; sent at sentAt)
// and counts the sending.
func (m *master) sent(t *tracked, rec taskstore.Record, sentAt, now time.Time, placedBefore bool) {
	m.table.sentAt(t, now)
	m.stats.dispatched.Add(1)
	if placedBefore {
		m.stats.redispatched.Add(1)
	}
	// sent_at is when it went out; the line is written when the worker
	// acked, which may be much later for a process that was stopped.
	m.log.Info("task sent", "uuid", rec.UUID, "executor", rec.Executor, "kind", rec.Kind, "sent_at", sentAt)
}

// sendRecord sends rec to its executor as this term's task.
func (m *master) sendRecord(rec taskstore.Record, ephemeral bool) error {
	return m.send(m.ctx, m.taskOf(rec), ephemeral)
}

// taskOf is rec as this term's task.
func (m *master) taskOf(rec taskstore.Record) message.Task {
	return message.Task{UUID: rec.UUID, Executor: rec.Executor, Kind: rec.Kind, Payload: rec.Payload, Number: rec.Number, Term: m.term,
		Attempt: int64(rec.Attempts), TimeoutMS: m.policy.timeoutOf(&rec).Milliseconds()}
}

// maxBatchBytes bounds the payloads of one request of placeBatchOn, well
// under a message's MaxSize.
const maxBatchBytes = 1 << 20

// placeBatchOn places durable tasks reserved on worker w (a batch of
// submissions', or waiting ones dispatch found a slot for), claimed, with
// one request (sendBatch) instead of one each, after one PutMany for
// those whose record moves to w. What placeOn does for one task it does
// for each; a task whose write failed, or all of a request that got no
// answer, are placed alone on w first, then on the others; a task w
// refused, on the others. A worker of an earlier release refuses the
// batch as a whole: its tasks then go one by one.
func (m *master) placeBatchOn(w string, ts []*tracked) {
	alone := func(t *tracked) { m.wg.Go(func() { m.placeThenRecord(t, w, "") }) }
	if m.sendBatch == nil || len(ts) < 2 {
		for _, t := range ts {
			alone(t)
		}
		return
	}
	// At most message.MaxBatch tasks and about a MiB of payloads a request.
	if batches := message.SplitBatch(ts, func(t *tracked) int { return 192 + len(t.rec.Payload) }, maxBatchBytes); len(batches) > 1 {
		for _, b := range batches[1:] {
			m.wg.Go(func() { m.placeBatchOn(w, b) })
		}
		ts = batches[0]
	}
	type sendable struct {
		t      *tracked
		rec    taskstore.Record
		before bool // placed before: a sending again
	}
	var ready, moving []sendable // moving: their record moves to w first
	for _, t := range ts {
		cur, before, doneMeanwhile := m.table.current(t)
		if doneMeanwhile || t.ephemeral || !m.lead.Valid() || m.ctx.Err() != nil {
			alone(t) // placeOn finds it done, or sends it its way
			continue
		}
		s := sendable{t, startAttempt(cur, w, time.Now()), before}
		if s.rec.Executor != cur.Executor || s.rec.Attempts != cur.Attempts || cur.Term != m.term {
			s.rec.Term = m.term
			moving = append(moving, s)
		} else {
			ready = append(ready, s)
		}
	}
	// The records that move are written together, as placeOn writes one.
	if len(moving) > 0 {
		recs := make([]taskstore.Record, len(moving))
		for i, s := range moving {
			recs[i] = s.rec
		}
		for i, err := range m.records.PutMany(m.ctx, recs) {
			if err != nil {
				alone(moving[i].t) // placeOn writes it again, or finds the term over
				continue
			}
			m.table.moved(moving[i].t, moving[i].rec)
			ready = append(ready, moving[i])
		}
	}
	if len(ready) == 0 {
		return
	}
	if !m.lead.Valid() {
		for _, s := range ready {
			alone(s.t)
		}
		return
	}
	tasks := make([]message.Task, len(ready))
	for i, s := range ready {
		m.table.reserveOn(s.t, w)
		m.table.sending(s.t, w, s.rec.Attempts)
		tasks[i] = m.taskOf(s.rec)
	}
	sentAt := time.Now()
	acks, err := m.sendBatch(m.ctx, w, tasks)
	if err != nil {
		m.log.Debug("worker did not take a batch of tasks", "worker", w, "tasks", len(ready), "err", err)
	}
	now := time.Now()
	for i, s := range ready {
		t := s.t
		switch {
		case err != nil: // no answer, or the batch refused as a whole: w first
			alone(t)
			continue
		case !acks[i].Accepted: // as placeOn's refusal: the next worker
			m.log.Debug("worker did not take the task", "uuid", tasks[i].UUID, "worker", w, "reason", acks[i].Reason)
			m.wg.Go(func() { m.placeThenRecord(t, "", w) })
			continue
		}
		m.sent(t, s.rec, sentAt, now, s.before)
		if m.table.placed(t, sentOK, now) {
			m.record(t) // its result came in while it was being placed
		}
	}
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
	ack, err := s.request(ctx, subject, body)
	if err != nil {
		return err
	}
	if !ack.Accepted {
		if ack.Term > task.Term {
			s.log.Warn("a worker has seen a newer term than ours", ratelog.Limit, "worker", task.Executor, "ours", task.Term, "theirs", ack.Term)
		}
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	return nil
}

// sendBatch sends durable tasks to their one executor in one request and
// returns the worker's acks, one per task in its order.
func (s natsSender) sendBatch(ctx context.Context, executor string, tasks []message.Task) ([]message.Ack, error) {
	size := 0
	for _, t := range tasks {
		size += 192 + len(t.Payload)
	}
	body := message.AppendTaskBatch(make([]byte, 0, size), tasks)
	rctx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	reply, err := s.conn.RequestWithContext(rctx, message.TaskSubject(executor), body)
	if err != nil {
		return nil, err
	}
	acks, err := message.DecodeAcks(reply.Data, len(tasks))
	if err != nil {
		return nil, fmt.Errorf("bad acks: %w", err)
	}
	for _, ack := range acks {
		if !ack.Accepted && ack.Term > tasks[0].Term {
			s.log.Warn("a worker has seen a newer term than ours", ratelog.Limit, "worker", executor, "ours", tasks[0].Term, "theirs", ack.Term)
			break
		}
	}
	return acks, nil
}

// cancel tells a worker to stop running a task, and waits for its ack.
func (s natsSender) cancel(ctx context.Context, c message.Cancel) error {
	body, err := encodeJSON(c)
	if err != nil {
		return err
	}
	ack, err := s.request(ctx, message.CancelSubject(c.Executor), body)
	if err != nil {
		return err
	}
	if !ack.Accepted {
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	return nil
}

// request sends body to a worker on subject and returns its ack, within
// the ack timeout.
func (s natsSender) request(ctx context.Context, subject string, body []byte) (message.Ack, error) {
	rctx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	reply, err := s.conn.RequestWithContext(rctx, subject, body)
	if err != nil {
		return message.Ack{}, err
	}
	ack, err := message.DecodeAck(reply.Data)
	if err != nil {
		return message.Ack{}, fmt.Errorf("bad ack: %w", err)
	}
	return ack, nil
}
