package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/schedule"
	"github.com/meshpool/meshpool/taskstore"
)

// The master's duties for one term, by concern:
//
//	master.go     the term's lifecycle: load, subscribe, loop, stop
//	tasktable.go  the tasks, the done index and the claim protocol
//	loadbook.go   the workers and their load: the one pick rule
//	admit.go      submissions: admission, duplicates, demo ticks
//	place.go      placements: on submission, on leave, on timeout
//	record.go     results: checked, then recorded once

// taskRecords is what a master reads and writes of task records: for a
// node, a taskstore.Writer fenced by the term, and taskstore's reads.
type taskRecords interface {
	// Load reads every task record (see taskstore.Load).
	Load(ctx context.Context) ([]taskstore.Record, int64, error)
	// Get reads one (see taskstore.Get).
	Get(ctx context.Context, uuid string) (taskstore.Record, bool, error)
	// Put and Complete write one, fenced (see taskstore.Writer).
	Put(ctx context.Context, r taskstore.Record) error
	// PutMany writes a batch's new tasks together (see
	// taskstore.Writer.PutMany).
	PutMany(ctx context.Context, recs []taskstore.Record) []error
	Complete(ctx context.Context, r taskstore.Record) error
	// Schedules reads every schedule (see schedule.Load); PutValue and
	// Delete write one, fenced (see taskstore.Writer).
	Schedules(ctx context.Context) ([]schedule.Schedule, error)
	PutValue(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// sendFunc gives a task to its executor: it returns once the worker took it
// (a durable task) or once it is published (ephemeral).
type sendFunc func(ctx context.Context, task message.Task, ephemeral bool) error

// masterConfig is what one term of master duties needs from the node.
type masterConfig struct {
	id      string
	prefix  string                    // etcd's, for the schedules' keys
	lead    interface{ Valid() bool } // the leadership: check it right before acting as master
	term    int64
	records taskRecords
	send    sendFunc
	// sendBatch gives a worker many durable tasks in one request and
	// returns their acks, one each (natsSender.sendBatch); nil: each is
	// sent alone.
	sendBatch func(ctx context.Context, executor string, tasks []message.Task) ([]message.Ack, error)
	// cancelOn tells a worker to stop running a cancelled task; nil in
	// tests that do not follow it.
	cancelOn    func(ctx context.Context, c message.Cancel) error
	conn        *nats.Conn // subscriptions and replies; nil in tests that call the handlers' cores
	membership  func() (registry.Membership, <-chan struct{})
	interval    time.Duration
	ackTimeout  time.Duration
	taskTimeout time.Duration
	retention   time.Duration // done records are kept this long
	// failedRetention is how long failed and cancelled records are kept.
	failedRetention time.Duration
	policy          lifePolicy // defaults of the tasks' options
	doneMax         int        // done tasks remembered in memory at most
	maxPayload      int        // a submission's payload bytes at most
	limits          pendingLimits
	// etcdFull says why etcd has no room for a new durable task, or "";
	// nil in tests that do not watch etcd's space.
	etcdFull func() string
	log      *slog.Logger
	stats    *masterStats
	latency  func(kind string, d time.Duration) // observes a done task's ack-to-record time; nil for none
}

// master runs the master duties for one term. It lives exactly as long as
// the leadership context it runs under.
type master struct {
	masterConfig
	ctx   context.Context // the leadership context
	table *taskTable
	wg    sync.WaitGroup // placements and recordings under way
	slots chan struct{}  // bounds concurrent submissions being recorded: submitSlots, of which slotsPerSubmitter per submitter (submitters)
	ops   chan struct{}  // bounds the operations answered at once (maxOps)
	scan  chan struct{}  // one listing at a time
	sched schedules

	retryMu sync.Mutex // one retry at a time: read the record, follow it again, write it
	// ownInbox prefixes the reply subjects of this node's own requests (a
	// worker's ack of a task comes there): nothing is answered there.
	ownInbox string

	// callbacks counts NATS callbacks under way: Unsubscribe does not wait
	// for one that has started, so run waits for them itself.
	callbacks sync.WaitGroup
	gateMu    sync.Mutex
	stopped   bool // set under gateMu when run is ending: callbacks do nothing
}

var errNoWorker = errors.New("no worker accepted the task")

// newMaster returns a master for the term ctx runs under; run starts it.
func newMaster(ctx context.Context, cfg masterConfig) *master {
	return &master{masterConfig: cfg, ctx: ctx, table: newTaskTable(cfg.doneMax, cfg.limits), slots: make(chan struct{}, submitSlots),
		ops: make(chan struct{}, maxOps), scan: make(chan struct{}, 1)}
}

// run does the master's work until its context ends.
func (m *master) run() error {
	ctx := m.ctx
	defer func() { // runs after every placement and recording has ended
		m.stats.inFlight.Add(-int64(m.table.len()))
	}()
	if err := m.loadTasks(ctx); err != nil {
		return err
	}
	if err := m.loadSchedules(ctx); err != nil {
		return err
	}
	var subs []*nats.Subscription
	// Shut down in order: no new callback, no new message, the callbacks
	// under way, then the work they started.
	defer func() {
		m.gateMu.Lock()
		m.stopped = true
		m.gateMu.Unlock()
		for _, sub := range subs {
			unsubscribe(sub, m.log)
		}
		m.callbacks.Wait()
		m.wg.Wait()
	}()
	if p := m.conn.NewRespInbox(); strings.LastIndexByte(p, '.') > 0 {
		m.ownInbox = p[:strings.LastIndexByte(p, '.')+1]
	}
	handlers := m.opsHandlers()
	maps.Copy(handlers, m.scheduleHandlers())
	handlers[message.SubjectResults] = m.onResult
	handlers[message.SubjectSubmit], handlers[message.SubjectSubmitAs] = m.onSubmit, m.onSubmit
	for subject, handle := range handlers {
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
	// due fires when the first task waiting for a time (run_at, a retry's
	// backoff) may start.
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	var dueAt time.Time
	timeTasks := func() {
		now := time.Now()
		m.fireDue(now)
		next := m.table.due(now)
		if n := m.sched.next(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
		if !next.Equal(dueAt) {
			dueAt = next
			if !next.IsZero() {
				due.Reset(time.Until(next))
			}
		}
		m.dispatch()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			m.generate()
		case <-scan.C:
			m.rescue(time.Now())
			timeTasks()
		case <-due.C:
			dueAt = time.Time{}
			timeTasks()
		case <-m.table.wake:
			timeTasks()
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
		m.gateMu.Lock()
		if m.stopped {
			m.gateMu.Unlock()
			return
		}
		m.callbacks.Add(1)
		m.gateMu.Unlock()
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
	recs, rev, err := m.records.Load(ctx)
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
	now := time.Now()
	live := m.table.resume(recs, now.Add(m.retention), now.Add(m.failedRetention))
	m.stats.inFlight.Add(int64(live))
	m.log.Info("tasks loaded", "live", live, "final", len(recs)-live, "revision", rev)
	return nil
}

// resume gives every loaded running task to its worker if it is still a
// member (a redelivery the worker answers without running the task
// again); one whose worker is gone has lost its attempt. Pending and
// retrying tasks wait for their time and a free slot. With no worker,
// running tasks wait for the membership change that brings one.
func (m *master) resume(mem registry.Membership) {
	now := time.Now()
	canPlace := m.table.hasWorkers()
	var own, lost []*tracked
	m.table.claimEach(func(t *tracked) bool {
		if t.rec.State != taskstore.Running {
			m.table.parkLocked(t, now)
			return false
		}
		if !canPlace {
			return false
		}
		if m.ownWorker(mem, t) == "" {
			why := "the worker left the cluster before it sent a result"
			if t.rec.Executor == m.id {
				why = "its worker became the master, which runs no task"
			}
			t.lost = &failure{executor: t.rec.Executor, attempt: t.rec.Attempts, err: lostText(t.rec.Executor, t.rec.Attempts, why)}
			lost = append(lost, t)
		} else {
			own = append(own, t)
		}
		return true
	})
	for _, t := range lost {
		m.wg.Go(func() { m.record(t) })
	}
	for _, t := range own {
		m.placeAsync(t, t.rec.Executor, "")
	}
	m.table.signal()
}

// ownWorker is t's worker when it is still a member other than this node,
// else "". t is claimed, so t.rec.Executor does not change.
func (m *master) ownWorker(mem registry.Membership, t *tracked) string {
	if _, ok := mem.Lookup(t.rec.Executor); ok && t.rec.Executor != m.id {
		return t.rec.Executor
	}
	return ""
}

// setWorkers keeps the other members for placements, so that a
// submission does not copy the membership.
func (m *master) setWorkers(mem registry.Membership) {
	m.table.setWorkers(mem.Others(m.id))
}

// badReply reports whether an answer may not go to reply: anything but a
// reply inbox (_INBOX.…, where NATS clients' requests wait: an answer
// elsewhere would be a message published in the master's name on any
// subject its requester chose), and this node's own request inbox (it
// would be taken for a worker's ack).
func (m *master) badReply(reply string) bool {
	return !strings.HasPrefix(reply, message.InboxRoot) || message.OwnSubject(reply) ||
		m.ownInbox != "" && strings.HasPrefix(reply, m.ownInbox)
}
