package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// masterStats are the master's counters; they outlive one term.
type masterStats struct {
	accepted       atomic.Int64 // tasks recorded and acknowledged to the submitter
	duplicates     atomic.Int64 // submissions of a known uuid, not run again
	conflicts      atomic.Int64 // submissions of a known uuid with another request, refused
	refused        atomic.Int64 // submissions refused (invalid, not recorded)
	badReplies     atomic.Int64 // submissions dropped unanswered: their reply subject is one of ours
	dispatched     atomic.Int64 // tasks acked by a worker (first placement or again)
	redispatched   atomic.Int64 // placements after the first: worker left, timed out, resumed
	resent         atomic.Int64 // tasks sent again to their worker when their submitter asked after them
	completed      atomic.Int64 // results recorded
	dupResults     atomic.Int64 // results for tasks already recorded, suppressed
	badResults     atomic.Int64 // malformed results refused
	refusedResults atomic.Int64 // well-formed results refused: not from a placement of a pending task, or wrong
	lateResults    atomic.Int64 // results recorded from a worker whose placement had timed out
	skipped        atomic.Int64 // demo ticks skipped for lack of workers
	inFlight       atomic.Int64 // tasks accepted and not yet recorded done
	recordFailures atomic.Int64 // etcd writes that failed (not fenced)
}

// masterConfig is what one term of master duties needs from the node.
type masterConfig struct {
	id          string
	lead        election.Leadership
	conn        *nats.Conn
	hasInterest func(subject string) bool // whether anyone subscribes to subject (broker.HasInterest)
	cli         *clientv3.Client
	prefix      string
	membership  func() (registry.Membership, <-chan struct{})
	interval    time.Duration
	ackTimeout  time.Duration
	taskTimeout time.Duration
	retention   time.Duration
	doneMax     int // done tasks remembered in memory at most
	log         *slog.Logger
	stats       *masterStats
	latency     func(time.Duration) // observes a task's ack-to-record time; nil for none
}

// master runs the master duties for one term. It lives exactly as long as
// the leadership context it runs under.
type master struct {
	masterConfig
	store *taskstore.Writer
	ctx   context.Context // the leadership context
	wg    sync.WaitGroup  // placements and recordings under way
	slots chan struct{}   // bounds concurrent submissions being recorded

	// callbacks counts NATS callbacks under way: Unsubscribe does not wait
	// for one that has started, so run waits for them itself.
	callbacks sync.WaitGroup
	stopped   bool // set under mu when run is ending: callbacks do nothing

	mu        sync.Mutex
	workerIDs []string            // the other members, replaced (never changed) on every membership change
	tasks     map[string]*tracked // accepted, not yet done, by uuid
	done      *doneIndex          // recorded done, kept for duplicate answers
	load      map[string]int      // tasks placed per worker
}

// tracked is an accepted task the master follows until its result is
// recorded. One operation at a time touches a task (busy): a placement or
// the recording of its result, so a re-placement can never write the task
// back as pending after its result was recorded.
type tracked struct {
	rec       taskstore.Record
	ephemeral bool            // durability none: never written to etcd; set at creation
	accepted  bool            // its record is written (or it is ephemeral): it may be called accepted
	sent      time.Time       // when its worker acked it; zero while unplaced
	busy      bool            // a placement or a recording is under way
	result    *message.Result // the first result received, until recorded
	sentTo    []placement     // this term's latest sendings, oldest first, at most maxPlacements
	retryAt   time.Time       // no worker took it: not placed again before this
	failures  int             // placements in a row that found no worker to take it
	resentAt  time.Time       // when it was last sent again to its worker for a submitter asking after it
}

// placement is one sending of a task, under the master's term: a result is
// recorded only when it answers one of them.
type placement struct {
	executor string
	attempt  int64
	timedOut bool // the task timed out on executor after this sending
}

// maxPlacements bounds the sendings a task remembers. A result from an
// older sending than these is refused; the task is sent again if need be.
const maxPlacements = 8

// sentLocked reports whether the task was sent to executor as attempt in
// this term. m.mu is held.
func (t *tracked) sentLocked(executor string, attempt int64) (p placement, ok bool) {
	for _, p := range t.sentTo {
		if p.executor == executor && p.attempt == attempt {
			return p, true
		}
	}
	return placement{}, false
}

// timedOutLocked marks the sendings to executor as timed out; whatever
// executor answers from now on comes after the task timeout. m.mu is held.
func (t *tracked) timedOutLocked(executor string) {
	for i := range t.sentTo {
		if t.sentTo[i].executor == executor {
			t.sentTo[i].timedOut = true
		}
	}
}

// addPlacementLocked remembers a sending, forgetting the oldest beyond
// maxPlacements. A sending to an executor that timed out stays marked so:
// its worker may just answer the redelivery of the task it is still
// working. m.mu is held.
func (t *tracked) addPlacementLocked(executor string, attempt int64) {
	p := placement{executor: executor, attempt: attempt}
	for _, q := range t.sentTo {
		p.timedOut = p.timedOut || q.executor == executor && q.timedOut
	}
	if len(t.sentTo) == maxPlacements {
		t.sentTo = append(t.sentTo[:0], t.sentTo[1:]...)
	}
	t.sentTo = append(t.sentTo, p)
}

// unplaceableLocked backs the task off after a placement that found no
// worker to take it: 1 s, 2 s, 4 s… up to 30 s; a membership change places
// it again at once. m.mu is held.
func (t *tracked) unplaceableLocked(now time.Time) {
	t.failures++
	t.retryAt = now.Add(min(time.Second<<min(t.failures-1, 5), 30*time.Second))
}

var errNoWorker = errors.New("no worker accepted the task")

// run does the master's work until ctx ends.
func (m *master) run(ctx context.Context) error {
	m.ctx = ctx
	m.tasks = make(map[string]*tracked)
	m.done = newDoneIndex(m.doneMax)
	m.load = make(map[string]int)
	m.slots = make(chan struct{}, 4096)
	defer func() { // runs after every placement and recording has ended
		m.mu.Lock()
		m.stats.inFlight.Add(-int64(len(m.tasks)))
		m.mu.Unlock()
	}()

	opts := taskstore.DefaultConfig()
	opts.Retention, opts.Logger = m.retention, m.log
	m.store = taskstore.NewWriter(m.cli, m.prefix, taskstore.Fence{Key: m.lead.Key, Term: m.lead.Term}, opts)
	// The writer stops with run, not only with the leadership: run may
	// return early (it cannot load the tasks) while still leading.
	wctx, stopWriter := context.WithCancel(ctx)
	var writer sync.WaitGroup
	writer.Go(func() { _ = m.store.Run(wctx) })
	defer func() { stopWriter(); writer.Wait() }()

	if err := m.loadTasks(ctx); err != nil {
		return err
	}
	var subs []*nats.Subscription
	// Shut down in order: no new callback, no new message, the callbacks
	// under way, then the work they started.
	defer func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		for _, sub := range subs {
			unsubscribe(sub, m.log)
		}
		m.callbacks.Wait()
		m.wg.Wait()
	}()
	for subject, handle := range map[string]nats.MsgHandler{message.SubjectResults: m.onResult, message.SubjectSubmit: m.onSubmit} {
		sub, err := m.conn.Subscribe(subject, m.gate(handle))
		if err != nil {
			return fmt.Errorf("node: master cannot subscribe to %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	mem, changed := m.membership()
	m.setWorkers(mem)
	m.resume(mem)

	var tick <-chan time.Time
	if m.interval > 0 {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		tick = t.C
	}
	scan := time.NewTicker(min(time.Second, m.taskTimeout/2))
	defer scan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			m.generate()
		case <-scan.C:
			m.rescue(time.Now())
		case <-changed:
			var mem registry.Membership
			mem, changed = m.membership()
			m.setWorkers(mem)
			m.reassign(mem)
		}
	}
}

// gate runs handle only while the master runs, and lets run wait for it.
func (m *master) gate(handle nats.MsgHandler) nats.MsgHandler {
	return func(msg *nats.Msg) {
		m.mu.Lock()
		if m.stopped {
			m.mu.Unlock()
			return
		}
		m.callbacks.Add(1)
		m.mu.Unlock()
		defer m.callbacks.Done()
		handle(msg)
	}
}

func unsubscribe(sub *nats.Subscription, log *slog.Logger) {
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Warn("cannot unsubscribe", "subject", sub.Subject, "err", err)
	}
}

// loadTasks reads the tasks an earlier master recorded.
func (m *master) loadTasks(ctx context.Context) error {
	recs, rev, err := taskstore.Load(ctx, m.cli, m.prefix)
	var bad *taskstore.BadRecordsError
	if errors.As(err, &bad) {
		// Not a task anyone could have been told was accepted: leave it,
		// say so loudly, and resume every other task.
		m.log.Error("task records that do not decode are left out", "count", len(bad.Keys), "err", err)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("node: master cannot load tasks: %w", err)
	}
	pending := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		switch r.State {
		case taskstore.Pending:
			m.tasks[r.UUID] = &tracked{rec: r, accepted: true}
			if r.Executor != "" {
				m.load[r.Executor]++
			}
			pending++
		case taskstore.Done:
			m.done.add(r.UUID, r.Result, false, time.Now().Add(m.retention))
		}
	}
	m.stats.inFlight.Add(int64(pending))
	m.log.Info("tasks loaded", "pending", pending, "done", len(recs)-pending, "revision", rev)
	return nil
}

// resume gives every loaded task to a worker: its own if it is still a
// member (a redelivery the worker answers without running the task again),
// else another. With no worker it leaves them to the membership change
// that brings one.
func (m *master) resume(mem registry.Membership) {
	m.mu.Lock()
	if len(m.workerIDs) == 0 {
		m.mu.Unlock()
		return
	}
	var todo []*tracked
	for _, t := range m.tasks {
		t.busy = true
		todo = append(todo, t)
	}
	m.mu.Unlock()
	for _, t := range todo {
		m.placeAsync(t, m.ownWorker(mem, t), "")
	}
}

// ownWorker is t's worker when it is still a member other than this node,
// else "". t.rec.Executor does not change while t is busy.
func (m *master) ownWorker(mem registry.Membership, t *tracked) string {
	if _, ok := mem.Lookup(t.rec.Executor); ok && t.rec.Executor != m.id {
		return t.rec.Executor
	}
	return ""
}

// generate makes one demo task, as the article's master does. Demo tasks
// may be lost: they are not recorded in etcd (durability none).
func (m *master) generate() {
	if len(m.workers()) == 0 {
		m.stats.skipped.Add(1)
		m.log.Info("no workers, skip task generation", ratelog.Limit)
		return
	}
	m.wg.Go(func() {
		_, t, err := m.accept(message.Submit{Number: 30 + rand.Int64N(31), Durability: message.DurabilityNone})
		if err != nil {
			m.log.Warn("demo task not accepted", ratelog.Limit, "err", err)
			return
		}
		m.placeNow(t)
	})
}

func (m *master) onSubmit(msg *nats.Msg) {
	if msg.Reply != "" && message.OwnSubject(msg.Reply) {
		// An answer there would come back as a submission, a task, a
		// result or an event: the submission is not taken at all.
		m.stats.badReplies.Add(1)
		m.log.Warn("submission dropped unanswered: its reply subject is one of meshpool's own", ratelog.Limit,
			"reply", ratelog.Truncate(msg.Reply))
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.reply(msg, message.SubmitReply{Error: "busy: too many submissions in progress", Temporary: true})
		return
	}
	// Decoded here, on the subscription's goroutine: its stack has grown
	// already, and a fresh goroutine's first act would be to grow its own.
	sub, err := message.DecodeSubmit(msg.Data)
	if err != nil {
		<-m.slots
		m.stats.refused.Add(1)
		m.log.Warn("submission refused", ratelog.Limit, "err", err)
		m.reply(msg, message.SubmitReply{Error: "invalid task: " + err.Error()})
		return
	}
	m.wg.Go(func() {
		defer func() { <-m.slots }()
		reply, t, err := m.accept(sub)
		if errors.Is(err, errNotLeading) {
			// A deposed master stays silent: the real master answers.
			return
		}
		if err != nil {
			m.reply(msg, message.SubmitReply{UUID: sub.UUID, Error: err.Error(), Temporary: true})
			return
		}
		m.reply(msg, reply)
		if t != nil {
			m.placeNow(t)
		}
	})
}

var errNotLeading = errors.New("not the master any more")

// accept records a new task; the caller hands the task it returns to a
// worker with placeNow. A known uuid is not run again: the answer says it is
// a duplicate and where it stands, and no task is returned.
func (m *master) accept(sub message.Submit) (message.SubmitReply, *tracked, error) {
	if sub.UUID == "" {
		sub.UUID = uuid.NewString()
	}
	if !m.lead.Valid() {
		return message.SubmitReply{}, nil, errNotLeading
	}
	m.mu.Lock()
	if t, ok := m.tasks[sub.UUID]; ok {
		accepted, term, number, ephemeral := t.accepted, t.rec.Term, t.rec.Number, t.ephemeral
		m.mu.Unlock()
		if !accepted {
			// The first submission's write is still under way and may
			// fail: it is not accepted yet.
			return message.SubmitReply{}, nil, errors.New("not accepted yet: the same uuid is still being recorded")
		}
		if reply, ok := m.conflict(sub, number, ephemeral); ok {
			return reply, nil, nil
		}
		m.stats.duplicates.Add(1)
		m.resendIfLost(t, time.Now())
		return message.SubmitReply{UUID: sub.UUID, Accepted: true, Duplicate: true, State: message.StatePending, Term: term}, nil, nil
	}
	if d, ok := m.done.get(sub.UUID); ok {
		m.mu.Unlock()
		if reply, ok := m.conflict(sub, d.result.Number, d.ephemeral); ok {
			return reply, nil, nil
		}
		m.stats.duplicates.Add(1)
		return message.SubmitReply{UUID: sub.UUID, Accepted: true, Duplicate: true, State: message.StateDone, Result: d.result, Term: m.lead.Term}, nil, nil
	}
	if !sub.Ephemeral() && m.done.mayHaveForgotten(sub.UUID, time.Now()) {
		// The index forgot tasks early: this uuid may be one of them,
		// still recorded in etcd. Look before running it again.
		m.mu.Unlock()
		if reply, found, err := m.lookUp(sub); err != nil || found {
			return reply, nil, err
		}
		m.mu.Lock()
		if _, ok := m.tasks[sub.UUID]; ok { // submitted again meanwhile
			m.mu.Unlock()
			return message.SubmitReply{}, nil, errors.New("not accepted yet: the same uuid is still being recorded")
		}
	}
	executor := leastLoaded(m.workerIDs, "", m.load)
	if executor != "" {
		m.load[executor]++
	}
	t := &tracked{busy: true, ephemeral: sub.Ephemeral(), accepted: sub.Ephemeral(), rec: taskstore.Record{
		UUID: sub.UUID, Number: sub.Number, Executor: executor, Term: m.lead.Term,
		State: taskstore.Pending, Submitted: time.Now().UTC(),
	}}
	m.tasks[sub.UUID] = t
	if t.ephemeral {
		m.stats.accepted.Add(1)
		m.stats.inFlight.Add(1)
		m.mu.Unlock()
		return message.SubmitReply{UUID: sub.UUID, Accepted: true, State: message.StatePending, Term: m.lead.Term}, t, nil
	}
	m.mu.Unlock()

	if err := m.store.Put(m.ctx, t.rec); err != nil {
		m.mu.Lock()
		delete(m.tasks, sub.UUID)
		if executor != "" {
			m.load[executor]--
		}
		m.mu.Unlock()
		if errors.Is(err, taskstore.ErrFenced) || m.ctx.Err() != nil {
			return message.SubmitReply{}, nil, errNotLeading
		}
		m.stats.recordFailures.Add(1)
		return message.SubmitReply{}, nil, fmt.Errorf("not accepted: cannot record the task: %w", err)
	}
	m.mu.Lock()
	t.accepted = true
	m.mu.Unlock()
	m.stats.accepted.Add(1)
	m.stats.inFlight.Add(1)
	m.log.Debug("task accepted", "uuid", sub.UUID, "number", sub.Number, "executor", executor)
	return message.SubmitReply{UUID: sub.UUID, Accepted: true, State: message.StatePending, Term: m.lead.Term}, t, nil
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
	m.mu.Lock()
	if t.busy || t.result != nil || t.sent.IsZero() || now.Sub(t.sent) < resendAfter || now.Sub(t.resentAt) < resendAfter {
		m.mu.Unlock()
		return
	}
	t.busy, t.resentAt = true, now
	rec := t.rec
	m.mu.Unlock()
	m.wg.Go(func() {
		if m.lead.Valid() && m.ctx.Err() == nil {
			if err := m.send(rec, t.ephemeral); err != nil {
				m.log.Debug("task not sent again", "uuid", rec.UUID, "worker", rec.Executor, "err", err)
			} else {
				m.stats.resent.Add(1)
			}
		}
		m.mu.Lock()
		recordNow := t.result != nil
		t.busy = recordNow
		m.mu.Unlock()
		if recordNow {
			m.record(t) // its result came in meanwhile
		}
	})
}

// conflict answers a submission of a known uuid whose request differs from
// the one the uuid was first submitted with: another number, or another
// durability (a durable submission must not be told a task is durable when
// it is not, nor the reverse). ok is false when it is the same request.
func (m *master) conflict(sub message.Submit, number int64, ephemeral bool) (reply message.SubmitReply, ok bool) {
	var why string
	switch {
	case sub.Number != number:
		why = fmt.Sprintf("number %d", number)
	case sub.Ephemeral() != ephemeral:
		why = "durability " + durability(ephemeral)
	default:
		return reply, false
	}
	m.stats.conflicts.Add(1)
	m.log.Warn("submission refused: uuid reused with another request", ratelog.Limit, "uuid", sub.UUID, "number", sub.Number, "first", why)
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
func (m *master) lookUp(sub message.Submit) (reply message.SubmitReply, found bool, err error) {
	id := sub.UUID
	ctx, cancel := context.WithTimeout(m.ctx, m.ackTimeout)
	defer cancel()
	resp, err := m.cli.Get(ctx, taskstore.Key(m.prefix, id))
	if err != nil {
		m.stats.recordFailures.Add(1)
		return reply, false, fmt.Errorf("not accepted: cannot look the uuid up in etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return reply, false, nil
	}
	rec, err := taskstore.Decode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
	if err != nil {
		return reply, true, fmt.Errorf("not accepted: the uuid's record does not decode: %w", err)
	}
	if reply, ok := m.conflict(sub, rec.Number, false); ok {
		return reply, true, nil
	}
	m.stats.duplicates.Add(1)
	state := message.StatePending
	if rec.State == taskstore.Done {
		state = message.StateDone
	}
	return message.SubmitReply{UUID: id, Accepted: true, Duplicate: true, State: state, Result: rec.Result, Term: m.lead.Term}, true, nil
}

// reassign, on a membership change, gives the tasks of workers that left to
// others, and places at once the tasks not placed yet (no worker took them,
// or there was none), whatever their back-off.
func (m *master) reassign(mem registry.Membership) {
	m.mu.Lock()
	var orphans, unplaced []*tracked
	for _, t := range m.tasks {
		if t.busy || t.result != nil {
			continue
		}
		t.retryAt, t.failures = time.Time{}, 0
		if len(m.workerIDs) == 0 {
			continue
		}
		_, member := mem.Lookup(t.rec.Executor)
		switch {
		case t.rec.Executor != "" && !member:
			t.busy = true
			orphans = append(orphans, t)
		case t.sent.IsZero():
			t.busy = true
			unplaced = append(unplaced, t)
		}
	}
	m.mu.Unlock()
	for _, t := range orphans {
		m.log.Info("worker left, giving its task to another", "uuid", t.rec.UUID, "worker", t.rec.Executor)
		m.placeAsync(t, "", t.rec.Executor)
	}
	for _, t := range unplaced {
		m.placeAsync(t, m.ownWorker(mem, t), "")
	}
}

// rescue re-places tasks that are not placed, or whose worker has not
// answered within the task timeout. With no worker it places nothing (the
// membership change that brings one does), and a task no worker took
// waits for its back-off: 30,000 pending tasks cost a pass over a map, not
// 30,000 placements a second.
func (m *master) rescue(now time.Time) {
	m.mu.Lock()
	var late, unrecorded []*tracked
	canPlace := len(m.workerIDs) > 0
	for _, t := range m.tasks {
		switch {
		case t.busy:
		case t.result != nil:
			t.busy = true
			unrecorded = append(unrecorded, t)
		case !canPlace || now.Before(t.retryAt):
		case t.sent.IsZero():
			t.busy = true
			late = append(late, t)
		case now.Sub(t.sent) >= m.taskTimeout:
			t.busy = true
			t.timedOutLocked(t.rec.Executor)
			late = append(late, t)
		}
	}
	m.done.expire(now)
	m.mu.Unlock()
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

// placeAsync places t in the background; t.busy must be set.
func (m *master) placeAsync(t *tracked, prefer, exclude string) {
	m.wg.Go(func() { m.placeThenRecord(t, prefer, exclude) })
}

// placeNow places a task accept returned, on the worker accept chose, in
// the calling goroutine; t.busy is set.
func (m *master) placeNow(t *tracked) { m.placeThenRecord(t, t.rec.Executor, "") }

func (m *master) placeThenRecord(t *tracked, prefer, exclude string) {
	err := m.place(t, prefer, exclude)
	if err != nil && m.ctx.Err() == nil {
		m.log.Debug("task not placed, will retry", "uuid", t.rec.UUID, "err", err)
	}
	m.mu.Lock()
	if err != nil {
		t.unplaceableLocked(time.Now())
	} else {
		t.retryAt, t.failures = time.Time{}, 0
	}
	recordNow := t.result != nil
	t.busy = recordNow
	m.mu.Unlock()
	if recordNow {
		m.record(t) // its result came in while it was being placed
	}
}

// errTryNext means a worker did not take a task and the next may.
var errTryNext = errors.New("worker did not take the task")

// place hands t to a worker: prefer first if given (its current worker, so
// no new record is needed), then the least busy others except exclude.
func (m *master) place(t *tracked, prefer, exclude string) error {
	if prefer != "" {
		if err := m.placeOn(t, prefer); !errors.Is(err, errTryNext) {
			return err
		}
	}
	m.mu.Lock()
	candidates := m.orderLocked(exclude)
	m.mu.Unlock()
	for _, w := range candidates {
		if w == prefer {
			continue
		}
		if err := m.placeOn(t, w); !errors.Is(err, errTryNext) {
			return err
		}
	}
	return errNoWorker
}

// placeOn sends t to worker w. A change of worker is recorded before the
// task is sent, so a new master knows where every task went. It returns
// an error wrapping errTryNext when w did not take the task.
func (m *master) placeOn(t *tracked, w string) error {
	if !m.lead.Valid() || m.ctx.Err() != nil {
		return errNotLeading
	}
	m.mu.Lock()
	rec := t.rec
	placedBefore := !t.sent.IsZero() || rec.Attempts > 0
	doneMeanwhile := t.result != nil
	m.mu.Unlock()
	if doneMeanwhile {
		return nil // it is recorded when we return
	}
	rec.Attempts++ // this sending's attempt, 1-based
	if rec.Executor != w || rec.Term != m.lead.Term {
		from := rec.Executor
		rec.Executor, rec.Term = w, m.lead.Term
		if err := m.putUnlessEphemeral(t, rec); err != nil {
			if errors.Is(err, taskstore.ErrFenced) {
				return errNotLeading
			}
			m.stats.recordFailures.Add(1)
			return fmt.Errorf("cannot record the new worker: %w", err)
		}
		m.mu.Lock()
		t.rec.Executor, t.rec.Term = w, m.lead.Term
		m.moveLoadLocked(from, w)
		m.mu.Unlock()
	}
	// The sending counts as made before it is sent: its result may come
	// even when the ack does not.
	m.mu.Lock()
	t.rec.Attempts = rec.Attempts
	t.addPlacementLocked(w, int64(rec.Attempts))
	m.mu.Unlock()
	if err := m.send(rec, t.ephemeral); err != nil {
		m.log.Debug("worker did not take the task", "uuid", rec.UUID, "worker", w, "err", err)
		return fmt.Errorf("%w: %w", errTryNext, err)
	}
	m.mu.Lock()
	t.sent = time.Now()
	m.mu.Unlock()
	m.stats.dispatched.Add(1)
	if placedBefore {
		m.stats.redispatched.Add(1)
	}
	m.log.Info("task sent", "uuid", rec.UUID, "executor", w, "number", rec.Number)
	return nil
}

func (m *master) putUnlessEphemeral(t *tracked, rec taskstore.Record) error {
	if t.ephemeral {
		return nil
	}
	return m.store.Put(m.ctx, rec)
}

func (m *master) moveLoadLocked(from, to string) {
	if from == to {
		return
	}
	if from != "" {
		m.load[from]--
		if m.load[from] <= 0 {
			delete(m.load, from)
		}
	}
	m.load[to]++
}

// send gives rec to its executor. A durable task is sent as a request and
// counts as sent when the worker acks it; an ephemeral one is only
// published, one message fewer per task. Like a request, the publication
// goes only where the worker's subscription is known (a worker that has
// just joined may not be yet): else the next worker is tried. If the worker
// goes away after that, the task is re-placed when the worker leaves the
// membership or the task times out.
func (m *master) send(rec taskstore.Record, ephemeral bool) error {
	task := message.Task{UUID: rec.UUID, Executor: rec.Executor, Number: rec.Number, Term: m.lead.Term, Attempt: int64(rec.Attempts)}
	body := task.AppendJSON(make([]byte, 0, 128))
	if ephemeral {
		subject := message.TaskSubject(rec.Executor)
		if m.hasInterest != nil && !m.hasInterest(subject) {
			return nats.ErrNoResponders
		}
		return m.conn.Publish(subject, body)
	}
	rctx, cancel := context.WithTimeout(m.ctx, m.ackTimeout)
	defer cancel()
	reply, err := m.conn.RequestWithContext(rctx, message.TaskSubject(rec.Executor), body)
	if err != nil {
		return err
	}
	ack, err := message.DecodeAck(reply.Data)
	if err != nil {
		return fmt.Errorf("bad ack: %w", err)
	}
	if !ack.Accepted {
		if ack.Term > m.lead.Term {
			m.log.Warn("a worker has seen a newer term than ours", ratelog.Limit, "worker", rec.Executor, "ours", m.lead.Term, "theirs", ack.Term)
		}
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	return nil
}

func (m *master) onResult(msg *nats.Msg) {
	res, err := message.DecodeResult(msg.Data)
	if err != nil {
		m.stats.badResults.Add(1)
		m.log.Warn("bad result refused", ratelog.Limit, "err", err)
		return
	}
	m.mu.Lock()
	t, ok := m.tasks[res.UUID]
	_, done := m.done.get(res.UUID)
	switch {
	case ok && t.result == nil:
		p, why := m.checkResultLocked(t, res)
		if why != "" {
			m.mu.Unlock()
			m.stats.refusedResults.Add(1)
			m.log.Warn("result refused", ratelog.Limit, "uuid", res.UUID, "executor", res.Executor,
				"term", res.Term, "attempt", res.Attempt, "reason", why)
			return
		}
		t.result = &res
		recordNow := !t.busy
		t.busy = true
		m.mu.Unlock()
		if p.timedOut {
			m.stats.lateResults.Add(1)
			m.log.Warn("result came after its task timed out and was sent again: the work takes longer than --task-timeout", ratelog.Limit,
				"uuid", res.UUID, "executor", res.Executor, "task_timeout", m.taskTimeout, "took", res.Finish.Sub(res.Start.Time))
		}
		if recordNow {
			m.wg.Go(func() { m.record(t) })
		}
		return
	case ok || done:
		m.mu.Unlock()
		m.stats.dupResults.Add(1)
		m.log.Debug("duplicate result suppressed", "uuid", res.UUID, "executor", res.Executor)
	default:
		m.mu.Unlock()
		m.log.Info("result for a task this master does not track", ratelog.Limit, "uuid", res.UUID, "executor", res.Executor, "term", res.Term)
	}
}

// checkResultLocked says why res cannot be t's result, or returns the
// sending it answers: a result is recorded only from a worker the task was
// sent to, for the term and attempt it was sent under (the first such result
// wins, even from a sending that timed out: it is real work), and only when
// it is the work rule's answer for the task's number. m.mu is held.
func (m *master) checkResultLocked(t *tracked, res message.Result) (placement, string) {
	switch {
	case res.Number != t.rec.Number:
		return placement{}, fmt.Sprintf("number %d is not the task's %d", res.Number, t.rec.Number)
	case res.Result != message.Work(res.Number):
		return placement{}, fmt.Sprintf("result %d is not the work rule's %d", res.Result, message.Work(res.Number))
	case res.Term != m.lead.Term:
		return placement{}, fmt.Sprintf("term %d is not this master's %d", res.Term, m.lead.Term)
	}
	p, ok := t.sentLocked(res.Executor, res.Attempt)
	if !ok {
		return placement{}, fmt.Sprintf("the task was not sent to %s as attempt %d in this term", res.Executor, res.Attempt)
	}
	return p, ""
}

// record writes the task's result, once; t.busy is set. After it the task is
// in the done set, or, when the write failed, pending with its result kept
// for the next rescue.
func (m *master) record(t *tracked) {
	m.mu.Lock()
	rec := t.rec
	rec.State, rec.Result, rec.Term = taskstore.Done, t.result, m.lead.Term
	m.mu.Unlock()
	err := errNotLeading
	switch {
	case !m.lead.Valid():
	case t.ephemeral:
		err = nil
	default:
		err = m.store.Complete(m.ctx, rec)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t.busy = false
	if err != nil {
		if !errors.Is(err, errNotLeading) && !errors.Is(err, taskstore.ErrFenced) && m.ctx.Err() == nil {
			m.stats.recordFailures.Add(1)
			m.log.Warn("cannot record result, will retry", ratelog.Limit, "uuid", rec.UUID, "err", err)
		}
		return
	}
	delete(m.tasks, rec.UUID)
	if m.load[rec.Executor]--; m.load[rec.Executor] <= 0 {
		delete(m.load, rec.Executor)
	}
	m.done.add(rec.UUID, rec.Result, t.ephemeral, time.Now().Add(m.retention))
	m.stats.completed.Add(1)
	m.stats.inFlight.Add(-1)
	res := rec.Result
	var latency time.Duration
	if !t.sent.IsZero() {
		d := time.Since(t.sent)
		if m.latency != nil {
			m.latency(d)
		}
		latency = d.Round(time.Millisecond)
	}
	m.log.Info("result", "uuid", res.UUID, "executor", res.Executor, "number", res.Number, "result", res.Result,
		"start", res.Start, "finish", res.Finish, "latency", latency)
}

func (m *master) reply(msg *nats.Msg, r message.SubmitReply) {
	respond(msg, r, m.log, slog.LevelDebug)
}

// setWorkers keeps the other members' IDs for placements, so that a
// submission does not copy the membership.
func (m *master) setWorkers(mem registry.Membership) {
	others := mem.Others(m.id)
	ids := make([]string, len(others))
	for i, r := range others {
		ids[i] = r.ID
	}
	m.mu.Lock()
	m.workerIDs = ids
	m.mu.Unlock()
}

func (m *master) workers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workerIDs
}

// orderLocked returns the workers ordered by tasks placed, fewest first,
// random among equals, leaving out exclude when another worker exists.
// m.mu is held.
func (m *master) orderLocked(exclude string) []string {
	workers := m.workerIDs
	if exclude != "" && len(workers) > 1 {
		workers = removeString(workers, exclude)
	}
	out := append([]string(nil), workers...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	sort.SliceStable(out, func(i, j int) bool { return m.load[out[i]] < m.load[out[j]] })
	return out
}

// leastLoaded returns the worker with the fewest tasks placed, chosen at
// random among equals, leaving out exclude when another worker exists; ""
// when there is none. One pass and no allocation: it runs per submission.
func leastLoaded(workers []string, exclude string, load map[string]int) string {
	best, bestLoad, ties := "", 0, 0
	for _, w := range workers {
		if w == exclude && len(workers) > 1 {
			continue
		}
		l := load[w]
		switch {
		case best == "" || l < bestLoad:
			best, bestLoad, ties = w, l, 1
		case l == bestLoad:
			ties++
			if rand.IntN(ties) == 0 { // keeps each of the ties with equal chance
				best = w
			}
		}
	}
	return best
}

func removeString(s []string, x string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}
