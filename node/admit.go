package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// generate makes one demo task, as the article's master does. Demo tasks
// may be lost: they are not recorded in etcd (durability none).
func (m *master) generate() {
	if !m.table.handled(message.KindTriple) {
		m.stats.skipped.Add(1)
		m.log.Info("no workers for the demo kind, skip task generation", ratelog.Limit)
		return
	}
	m.wg.Go(func() {
		n := 30 + rand.Int64N(31)
		sub := message.Submit{Kind: message.KindTriple, Payload: strconv.AppendInt(nil, n, 10), Number: n, Durability: message.DurabilityNone}
		_, t, err := m.accept(sub, message.MasterSubmitter)
		if err != nil {
			m.log.Warn("demo task not accepted", ratelog.Limit, "err", err)
			return
		}
		m.placeNow(t)
	})
}

// onSubmit takes a submission on tasks.submit (the anonymous submitter)
// or tasks.submit.<submitter>. One whose submitter holds its bound of
// tasks or of submissions in progress is refused from its subject alone,
// before it is decoded or takes one of the master's slots.
func (m *master) onSubmit(msg *nats.Msg) {
	if msg.Reply != "" && m.badReply(msg.Reply) {
		// An answer there would come back as a submission, a task, a
		// result or an event, or as a worker's ack: the submission is not
		// taken at all.
		m.stats.badReplies.Add(1)
		m.log.Warn("submission dropped unanswered: its reply subject is one of meshpool's own", ratelog.Limit,
			"reply", ratelog.Truncate(msg.Reply))
		return
	}
	submitter, ok := message.SubmitterOf(msg.Subject)
	if ok && submitter != "" && msg.Reply != "" && !message.InInbox(msg.Reply, submitter) {
		// A named submitter's answers go to its own inboxes only, the
		// only ones it may read in a secure cluster: not into another's.
		m.stats.badReplies.Add(1)
		m.log.Warn("submission dropped unanswered: its reply subject is not one of its submitter's inboxes", ratelog.Limit,
			"submitter", submitter, "reply", ratelog.Truncate(msg.Reply), "want", message.InboxPrefix(submitter)+".")
		return
	}
	answer := func(r message.SubmitReply) { respond(msg, r, m.log, slog.LevelDebug) }
	if !ok {
		m.stats.refused.Add(1)
		answer(message.SubmitReply{Error: "invalid task: subject " + ratelog.Truncate(msg.Subject) + " names no submitter: want " +
			message.SubjectSubmit + ".<name>, the name of letters, digits, '-' and '_'"})
		return
	}
	if refused := m.table.submitters.enter(submitter); refused != "" {
		m.stats.overQuota.Add(1)
		answer(message.SubmitReply{Error: refused, Temporary: true})
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.table.submitters.leave(submitter)
		answer(message.SubmitReply{Error: "busy: too many submissions in progress", Temporary: true})
		return
	}
	done := func() {
		<-m.slots
		m.table.submitters.leave(submitter)
	}
	if message.IsBatch(msg.Data) {
		m.onSubmitBatch(msg, submitter, done)
		return
	}
	// Decoded here, on the subscription's goroutine: its stack has grown
	// already, and a fresh goroutine's first act would be to grow its own.
	sub, err := message.DecodeSubmit(msg.Data)
	if err = m.checkDecoded(sub, err); err != nil {
		done()
		m.refusedAsInvalid("submission refused", err)
		answer(message.SubmitReply{Error: "invalid task: " + err.Error()})
		return
	}
	m.wg.Go(func() {
		defer done()
		m.submit(sub, submitter, answer)
	})
}

// onSubmitBatch decodes a batch onSubmit took a slot for, and accepts it
// in the background; done gives the slot back. A batch that does not
// decode as a whole is refused with one answer; a submission in it that
// does not, alone.
func (m *master) onSubmitBatch(msg *nats.Msg, submitter string, done func()) {
	subs, errs, err := message.DecodeSubmitBatch(msg.Data)
	if err != nil {
		done()
		m.refusedAsInvalid("batch refused", err)
		respond(msg, message.SubmitReply{Error: "invalid batch: " + err.Error()}, m.log, slog.LevelDebug)
		return
	}
	for i, sub := range subs {
		if errs[i] = m.checkDecoded(sub, errs[i]); errs[i] != nil {
			m.refusedAsInvalid("submission in a batch refused", errs[i])
		}
	}
	m.wg.Go(func() {
		defer done()
		m.submitBatch(subs, errs, submitter, func(rs message.SubmitReplies) { respond(msg, rs, m.log, slog.LevelDebug) })
	})
}

// checkDecoded is err, the error of sub's decoding, or, without one,
// why sub's payload is too large, or nil.
func (m *master) checkDecoded(sub message.Submit, err error) error {
	if err == nil && len(sub.Payload) > m.maxPayload {
		err = fmt.Errorf("%w: payload is %d bytes, more than --max-payload %d", message.ErrTooLarge, len(sub.Payload), m.maxPayload)
	}
	return err
}

// refusedAsInvalid counts and logs a submission (or batch) refused as
// invalid.
func (m *master) refusedAsInvalid(what string, err error) {
	if errors.Is(err, message.ErrVersion) {
		m.stats.badVersion.Add(1)
	}
	m.stats.refused.Add(1)
	m.log.Warn(what, ratelog.Limit, "err", err)
}

// submit accepts sub from submitter, answers it, and places the task. A
// deposed master does not answer: the real master does.
func (m *master) submit(sub message.Submit, submitter string, answer func(message.SubmitReply)) {
	reply, t, err := m.accept(sub, submitter)
	if errors.Is(err, errNotLeading) {
		return
	}
	if err != nil {
		answer(message.SubmitReply{UUID: sub.UUID, Error: err.Error(), Temporary: true})
		return
	}
	answer(reply)
	if t != nil {
		m.placeNow(t)
	}
}

// placeNow places a task accept returned, on the worker accept chose, in
// the calling goroutine; without one (its time has not come, or tasks of
// its kind wait) the task waits. t is claimed.
func (m *master) placeNow(t *tracked) {
	if t.slot == "" {
		if m.table.park(t, time.Now()) {
			m.record(t)
		}
		return
	}
	m.placeThenRecord(t, t.rec.Executor, "")
}

var errNotLeading = errors.New("not the master any more")

// errRecording answers a uuid whose first submission is still being recorded.
var errRecording = errors.New("not accepted yet: the same uuid is still being recorded")

// accept records a new task of submitter (message.MasterSubmitter for
// the master's own); the caller hands the task it returns to a worker with
// placeNow. A known uuid is not run again: the answer says it is a
// duplicate and where it stands, and no task is returned.
func (m *master) accept(sub message.Submit, submitter string) (message.SubmitReply, *tracked, error) {
	reply, t, err := m.admitNew(sub, submitter)
	if t == nil {
		return reply, nil, err
	}
	if !t.ephemeral {
		if err := m.records.Put(m.ctx, t.rec); err != nil {
			return message.SubmitReply{}, nil, m.notRecorded(t, err)
		}
	}
	return m.taken(t), t, nil
}

// admitNew decides sub as accept does, up to the write: it returns the
// answer (or the error) to give, or the new task to record (unless it is
// ephemeral) and then hand to taken; or, if the write fails, to
// notRecorded.
func (m *master) admitNew(sub message.Submit, submitter string) (message.SubmitReply, *tracked, error) {
	if sub.UUID == "" {
		sub.UUID = uuid.NewString()
	}
	if !m.lead.Valid() {
		return message.SubmitReply{}, nil, errNotLeading
	}
	now := time.Now()
	rec, err := m.newRecord(sub, submitter, now)
	if err != nil {
		return message.SubmitReply{UUID: sub.UUID, Error: "invalid task: " + err.Error()}, nil, nil
	}
	print := m.table.workPrint(sub.Kind, sub.Payload) // before the lock: a payload may be large
	a := m.table.admit(sub, rec, print, now, false)
	if a.known == lookUp {
		// The done index forgot tasks early: this uuid may be one of
		// them, still recorded in etcd. Look before running it again.
		if reply, found, err := m.lookUp(sub, print); err != nil || found {
			return reply, nil, err
		}
		a = m.table.admit(sub, rec, print, time.Now(), true)
	}
	switch a.known {
	case fullSubmitter:
		m.stats.overQuota.Add(1)
		return message.SubmitReply{}, nil, errors.New(a.refusal)
	case full:
		m.stats.overloaded.Add(1)
		return message.SubmitReply{}, nil, fmt.Errorf("busy: the master holds %d tasks (--max-pending %d) of %d payload bytes (--max-pending-bytes %d); try again later",
			a.tasks, m.limits.tasks, a.bytes, m.limits.bytes)
	case fullEphemeral:
		m.stats.overloaded.Add(1)
		return message.SubmitReply{}, nil, fmt.Errorf("busy: the master holds %d tasks of durability none (--max-ephemeral %d); try again later",
			a.tasks, m.limits.ephemeral)
	case recording:
		// The first submission's write is under way and may fail: it
		// is not accepted yet.
		return message.SubmitReply{}, nil, errRecording
	case pending, done:
		if reply, ok := m.conflict(sub, a.print == print, a.ephemeral); ok {
			return reply, nil, nil
		}
		m.stats.duplicates.Add(1)
		if a.known == done {
			return message.SubmitReply{UUID: sub.UUID, Accepted: true, Duplicate: true, State: a.state, Result: a.result, Term: m.term}, nil, nil
		}
		m.resendIfLost(a.t, time.Now())
		return message.SubmitReply{UUID: sub.UUID, Accepted: true, Duplicate: true, State: a.state, Term: a.term}, nil, nil
	}
	t := a.t
	// Only a new task waits for room in etcd: a known uuid was answered as
	// the duplicate it is above, so that its submitter does not take a
	// refusal for a loss and submit the work again under another uuid.
	if why := m.etcdFullFor(sub); why != "" {
		m.table.drop(t)
		m.stats.overloaded.Add(1)
		return message.SubmitReply{}, nil, errors.New("busy: " + why)
	}
	return message.SubmitReply{}, t, nil
}

// notRecorded drops t, a new task admitNew returned, whose record could
// not be written, and says why it is not accepted: errNotLeading when the
// term is over.
func (m *master) notRecorded(t *tracked, err error) error {
	m.table.drop(t)
	if errors.Is(err, taskstore.ErrFenced) || m.ctx.Err() != nil {
		return errNotLeading
	}
	m.stats.recordFailures.Add(1)
	return fmt.Errorf("not accepted: cannot record the task: %w", err)
}

// taken accepts t, a new task admitNew returned, once it is recorded (or
// at once, when ephemeral), and returns the answer.
func (m *master) taken(t *tracked) message.SubmitReply {
	if !t.ephemeral {
		m.table.accepted(t)
		m.log.Debug("task accepted", "uuid", t.rec.UUID, "kind", t.rec.Kind, "executor", t.rec.Executor)
	}
	m.stats.accepted.Add(1)
	m.stats.inFlight.Add(1)
	return message.SubmitReply{UUID: t.rec.UUID, Accepted: true, State: string(t.rec.State), Term: m.term}
}

// submitBatch accepts a batch of submissions from submitter (errs[i]
// says why subs[i] did not decode) and answers once, one answer per
// submission in its order. Each is decided as accept decides it alone; the
// new durable tasks are recorded together, in as few txns as fit, and then
// placed. A deposed master does not answer: the real master does.
func (m *master) submitBatch(subs []message.Submit, errs []error, submitter string, answer func(message.SubmitReplies)) {
	type admitted struct {
		i int // its place in the batch
		t *tracked
	}
	replies := make(message.SubmitReplies, len(subs))
	var news []admitted
	var recs []taskstore.Record // of the durable ones among news, in order
	// abandon drops what a deposed master admitted and has not taken.
	abandon := func(news []admitted) {
		for _, n := range news {
			m.table.drop(n.t)
		}
	}
	for i, sub := range subs {
		if errs[i] != nil {
			replies[i] = message.SubmitReply{Error: "invalid task: " + errs[i].Error()}
			continue
		}
		reply, t, err := m.admitNew(sub, submitter)
		switch {
		case errors.Is(err, errNotLeading):
			abandon(news)
			return
		case err != nil:
			replies[i] = message.SubmitReply{UUID: sub.UUID, Error: err.Error(), Temporary: true}
		case t == nil:
			replies[i] = reply
		default:
			news = append(news, admitted{i, t})
			if !t.ephemeral {
				recs = append(recs, t.rec)
			}
		}
	}
	var putErrs []error
	if len(recs) > 0 {
		putErrs = m.records.PutMany(m.ctx, recs)
	}
	placed := make([]*tracked, 0, len(news))
	for k, n := range news {
		if !n.t.ephemeral {
			err := putErrs[0]
			putErrs = putErrs[1:]
			if err != nil {
				if err = m.notRecorded(n.t, err); errors.Is(err, errNotLeading) {
					abandon(news[k+1:])
					return
				}
				replies[n.i] = message.SubmitReply{UUID: n.t.rec.UUID, Error: err.Error(), Temporary: true}
				continue
			}
		}
		replies[n.i] = m.taken(n.t)
		placed = append(placed, n.t)
	}
	trimResults(replies)
	answer(replies)
	// The durable tasks reserved on one worker go to it in one request;
	// the others, each as accept's caller places it.
	byWorker := map[string][]*tracked{}
	for _, t := range placed {
		if t.slot == "" || t.ephemeral {
			m.wg.Go(func() { m.placeNow(t) })
			continue
		}
		byWorker[t.rec.Executor] = append(byWorker[t.rec.Executor], t)
	}
	for w, ts := range byWorker {
		m.wg.Go(func() { m.placeBatchOn(w, ts) })
	}
}

// newRecord is sub's record as accepted from submitter at now: its
// options, the node's defaults where it gave none, and the time it may
// start (run_at, or now plus its delay).
func (m *master) newRecord(sub message.Submit, submitter string, now time.Time) (taskstore.Record, error) {
	r := taskstore.Record{UUID: sub.UUID, Kind: sub.Kind, Payload: sub.Payload, Number: sub.Number, Term: m.term,
		State: taskstore.Pending, Submitted: now.UTC(), Submitter: submitter, MaxAttempts: sub.MaxAttempts, Priority: sub.Priority,
		Timeout: sub.Timeout, Backoff: sub.Backoff, BackoffMax: sub.BackoffMax}
	switch {
	case sub.Delay > 0:
		r.NotBefore = now.Add(sub.Delay.D()).UTC()
	case !sub.RunAt.IsZero() && sub.RunAt.Sub(now) > message.MaxDelay:
		return r, fmt.Errorf("run_at %s is more than %s away", sub.RunAt, message.MaxDelay)
	case sub.RunAt.After(now):
		r.NotBefore = sub.RunAt.UTC()
	}
	m.policy.withDefaults(&r)
	return r, nil
}

// resendAfter is how long a task is out with its worker before a submitter
// asking after it (client.Wait does every few seconds) has it sent again.
const resendAfter = time.Second

// resendIfLost sends a pending task again to its worker, under its latest
// sending, when its submitter asks after it and it has been out for
// resendAfter: NATS delivers at most once, and when nodes join,
// nats-server closes the duplicate route connections with whatever they
// carried, so a task (published without an ack when non-durable) or its
// result can be lost without any fault, and would otherwise wait for
// --task-timeout. The worker does not run a task twice: one under way is
// only acked, one done has its result published again. At most once per
// resendAfter per task; not an attempt, and not a reason to wait longer
// before the task timeout.
func (m *master) resendIfLost(t *tracked, now time.Time) {
	var rec taskstore.Record
	if !m.table.claimIf(t, func(t *tracked) bool {
		if t.result != nil || t.queued != nil || t.sent.IsZero() || now.Sub(t.sent) < resendAfter || now.Sub(t.resentAt) < resendAfter {
			return false
		}
		t.resentAt, rec = now, t.rec
		return true
	}) {
		return
	}
	m.wg.Go(func() {
		if m.lead.Valid() && m.ctx.Err() == nil {
			if err := m.sendRecord(rec, t.ephemeral); err != nil {
				m.log.Debug("task not sent again", "uuid", rec.UUID, "worker", rec.Executor, "err", err)
			} else {
				m.stats.resent.Add(1)
			}
		}
		if m.table.release(t) {
			m.record(t) // its result came in meanwhile
		}
	})
}

// conflict answers a submission of a known uuid whose request differs from
// the one the uuid was first submitted with: another kind or payload
// (sameWork false), or another durability (a durable submission must not
// be told a task is durable when it is not, nor the reverse). ok is false
// when it is the same request.
func (m *master) conflict(sub message.Submit, sameWork, ephemeral bool) (reply message.SubmitReply, ok bool) {
	var why string
	switch {
	case !sameWork:
		why = "another kind or payload"
	case sub.Ephemeral() != ephemeral:
		why = "durability " + durability(ephemeral)
	default:
		return reply, false
	}
	m.stats.conflicts.Add(1)
	m.log.Warn("submission refused: uuid reused with another request", ratelog.Limit, "uuid", sub.UUID, "kind", sub.Kind, "first", why)
	return message.SubmitReply{UUID: sub.UUID,
		Error: fmt.Sprintf("conflict: uuid %s was submitted with another request (%s)", sub.UUID, why)}, true
}

func durability(ephemeral bool) string {
	if ephemeral {
		return message.DurabilityNone
	}
	return message.DurabilityDurable
}

// lookUp reads a submitted uuid's record from etcd, for when the done
// index may have forgotten it. found is false when there is no record.
func (m *master) lookUp(sub message.Submit, print uint64) (reply message.SubmitReply, found bool, err error) {
	ctx, cancel := context.WithTimeout(m.ctx, m.ackTimeout)
	defer cancel()
	rec, found, err := m.records.Get(ctx, sub.UUID)
	switch {
	case errors.Is(err, taskstore.ErrBadRecord):
		return reply, true, fmt.Errorf("not accepted: the uuid's record does not decode: %w", err)
	case err != nil:
		m.stats.recordFailures.Add(1)
		return reply, false, fmt.Errorf("not accepted: cannot look the uuid up in etcd: %w", err)
	case !found:
		return reply, false, nil
	}
	if reply, ok := m.conflict(sub, m.table.workPrint(rec.Kind, rec.Payload) == print, false); ok {
		return reply, true, nil
	}
	m.stats.duplicates.Add(1)
	return message.SubmitReply{UUID: sub.UUID, Accepted: true, Duplicate: true, State: string(rec.State), Result: rec.Result, Term: m.term}, true, nil
}

// etcdFullFor says why sub, if durable, must wait for room in etcd, or "".
// A task of durability none is not written to etcd and is still taken.
func (m *master) etcdFullFor(sub message.Submit) string {
	if m.etcdFull == nil || sub.Durability == message.DurabilityNone {
		return ""
	}
	return m.etcdFull()
}

// maxBatchResults bounds the result bytes the answer to a batch carries,
// so that it stays well under a message's MaxSize whatever its
// duplicates' results (each up to --max-result).
const maxBatchResults = 1 << 20

// trimResults leaves out of the answers to a batch the duplicates'
// results beyond maxBatchResults bytes: such an answer says done and
// duplicate without its result, which the submitter asks for with
// tasks.get (client.Wait does).
func trimResults(replies message.SubmitReplies) {
	size := 0
	for i, r := range replies {
		if r.Result == nil {
			continue
		}
		if size += len(r.Result.Result) + len(r.Result.Error); size > maxBatchResults {
			replies[i].Result = nil
		}
	}
}
