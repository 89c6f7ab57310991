package node

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
)

// workerConfig is what a worker runs tasks with.
type workerConfig struct {
	handlers *meshpool.Mux
	// slots is how many handlers run at once at most. As many tasks again
	// may wait for a slot; beyond that a task is refused as busy.
	slots int
	// timeout ends a handler's context: the task's time is up.
	timeout   time.Duration
	maxResult int
}

// worker takes tasks addressed to this node, works them and publishes results.
type worker struct {
	id   string
	conn *nats.Conn
	log  *slog.Logger
	workerConfig
	slotSem chan struct{} // one token per handler running
	seed    maphash.Seed

	// term is the current master's term as the worker knows it: from the
	// election, or read from etcd to check a task's other term (never
	// taken from a task unchecked).
	term atomic.Int64
	// masterTerm reads the current master's term from etcd, within
	// termCheckTimeout; see checkTerm.
	masterTerm       func(ctx context.Context) (int64, error)
	termCheckTimeout time.Duration
	// views counts the election's changes of master (followMaster).
	views atomic.Int64
	// The last check of a term in etcd, under termMu: tasks and cancels
	// (two subscriptions, two goroutines) check terms one at a time.
	termMu       sync.Mutex
	checkedAt    time.Time
	checkedViews int64

	mu        sync.Mutex
	closed    bool
	sub       *nats.Subscription // tasks.<id>
	cancelSub *nats.Subscription // tasks.<id>.cancel
	wg        sync.WaitGroup
	ctx       context.Context // cancelled when in-flight work is abandoned
	abandon   context.CancelFunc
	running   map[taskKey]*runningTask // tasks taken and not done
	recent    *recentResults           // results of tasks finished lately
	cancels   *cancelledIDs            // uuids of tasks cancelled lately

	inFlight    atomic.Int64 // tasks taken and not done, waiting for a slot or running
	busy        atomic.Int64 // handlers running
	maxBusy     atomic.Int64 // the most handlers ever seen running at once
	completed   atomic.Int64
	failed      atomic.Int64 // tasks whose handler returned an error (also in completed)
	refused     atomic.Int64
	redelivered atomic.Int64 // tasks received again: acked, not run again
	cancelled   atomic.Int64 // tasks taken and cancelled by the master before they were done
}

func newWorker(id string, conn *nats.Conn, cfg workerConfig, masterTerm func(context.Context) (int64, error), termCheckTimeout time.Duration, log *slog.Logger) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{
		id: id, conn: conn, workerConfig: cfg, slotSem: make(chan struct{}, cfg.slots), seed: maphash.MakeSeed(),
		masterTerm: masterTerm, termCheckTimeout: termCheckTimeout, log: log, ctx: ctx, abandon: cancel,
		running: make(map[taskKey]*runningTask), recent: newRecentResults(recentCapacity, recentBytes),
		cancels: newCancelledIDs(cancelMemory, cancelMemoryFor),
	}
}

// start subscribes to tasks.<id> and tasks.<id>.cancel.
func (w *worker) start() error {
	sub, err := w.conn.Subscribe(message.TaskSubject(w.id), w.handle)
	if err != nil {
		return fmt.Errorf("node: cannot subscribe to %s: %w", message.TaskSubject(w.id), err)
	}
	cancelSub, err := w.conn.Subscribe(message.CancelSubject(w.id), w.handleCancel)
	if err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("node: cannot subscribe to %s: %w", message.CancelSubject(w.id), err)
	}
	w.mu.Lock()
	w.sub, w.cancelSub = sub, cancelSub
	w.mu.Unlock()
	// Make sure the server has the interest before we register, so the
	// master's first request does not meet "no responders".
	return w.conn.Flush()
}

// observeTerm raises the newest term known. Only for terms from the
// election or etcd: a task's term goes through checkTerm.
func (w *worker) observeTerm(term int64) {
	for {
		cur := w.term.Load()
		if term <= cur || w.term.CompareAndSwap(cur, term) {
			return
		}
	}
}

func (w *worker) handle(msg *nats.Msg) {
	if message.IsBatch(msg.Data) {
		w.handleBatch(msg)
		return
	}
	ack, then := w.take(msg.Data)
	w.reply(msg, ack)
	if then != nil {
		then()
	}
}

// handleBatch takes each task of a batch the master sent in one request
// (see message.DecodeTaskBatch) as it takes one alone, and acks them all
// in one answer, one ack each, in their order.
func (w *worker) handleBatch(msg *nats.Msg) {
	raws, err := message.DecodeTaskBatch(msg.Data)
	if err != nil {
		w.reply(msg, w.refusal("invalid batch of tasks: "+err.Error(), "uuid", ""))
		return
	}
	acks := make(message.Acks, len(raws))
	thens := make([]func(), 0, len(raws))
	for i, raw := range raws {
		var then func()
		if acks[i], then = w.take(raw); then != nil {
			thens = append(thens, then)
		}
	}
	respond(msg, acks, w.log, slog.LevelWarn)
	for _, then := range thens {
		then()
	}
}

// take decides a task sent to this worker: the ack to answer and, when
// it is taken, what to do once the ack is sent (run it, or publish again
// the result of a task done here already).
func (w *worker) take(data []byte) (message.Ack, func()) {
	task, err := message.DecodeTask(data)
	if err != nil {
		return w.refusal("invalid task: "+err.Error(), "uuid", ""), nil
	}
	if task.Executor != w.id {
		return w.refusal(fmt.Sprintf("task is for %s, not %s", task.Executor, w.id), "uuid", task.UUID), nil
	}
	handler, ok := w.handlers.Handler(task.Kind)
	if !ok {
		return w.refusal(fmt.Sprintf("kind %s is not handled here", task.Kind), "uuid", task.UUID), nil
	}
	if err := w.checkTerm(task.Term); err != nil {
		return w.refusal(err.Error(), "uuid", task.UUID, "term", task.Term), nil
	}

	key := taskKey{task.UUID, w.workPrint(task)} // before the lock: a payload may be large
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.refusal("worker is shutting down", "uuid", task.UUID), nil
	}
	// A task sent before its cancel may arrive after it: they travel on
	// two subscriptions.
	if w.cancels.has(task.UUID, task.Attempt, time.Now()) {
		w.mu.Unlock()
		return w.refusal("cancelled", "uuid", task.UUID), nil
	}
	// A task sent again (a new master resuming, a timeout) is not run twice:
	// if it is under way the ack says so, if it is done its result is
	// published again for the master that missed it.
	if s, ok := w.running[key]; ok {
		s.raise(task)
		w.mu.Unlock()
		w.redelivered.Add(1)
		return message.Ack{Accepted: true, Term: w.term.Load()}, nil
	}
	// A later attempt of a task whose attempt failed here runs again: the
	// error answered the attempt it was made for, not this one.
	if res, print, ok := w.recent.get(task.UUID); ok && print == key.print && (res.Error == "" || task.Attempt <= res.Attempt) {
		w.mu.Unlock()
		w.redelivered.Add(1)
		return message.Ack{Accepted: true, Term: w.term.Load()}, func() {
			res.Term, res.Attempt = task.Term, task.Attempt // for the master that sent it now
			w.publish(res)
			w.log.Info("task already done, result published again", "uuid", task.UUID)
		}
	}
	if n := len(w.running); n >= 2*w.slots {
		w.mu.Unlock()
		return w.refusal(fmt.Sprintf("busy: %d tasks taken for %d slots", n, w.slots), "uuid", task.UUID), nil
	}
	ctx, cancel := context.WithCancelCause(w.ctx)
	t := &runningTask{sending: sending{term: task.Term, attempt: task.Attempt}, cancel: cancel}
	w.running[key] = t
	w.wg.Add(1)
	w.mu.Unlock()

	w.inFlight.Add(1)
	return message.Ack{Accepted: true, Term: w.term.Load()}, func() {
		w.log.Info("task received", "uuid", task.UUID, "kind", task.Kind, "term", task.Term)
		go w.work(ctx, task, key, t, handler, time.Now().Add(w.taskTimeout(task)))
	}
}

// taskTimeout is the time task's attempt has: its own, or the worker's.
func (w *worker) taskTimeout(task message.Task) time.Duration {
	if task.TimeoutMS > 0 {
		return time.Duration(task.TimeoutMS) * time.Millisecond
	}
	return w.timeout
}

// workPrint is a fingerprint of a task's kind and payload: a task sent with
// a known uuid and another payload is another task.
func (w *worker) workPrint(task message.Task) uint64 {
	return workPrint(w.seed, task.Kind, task.Payload)
}

// termCheckInterval is how often at most a worker reads the master's term
// from etcd while the election shows no change of master: a stream of tasks
// with forged terms costs etcd four reads a second, and the worker's real
// tasks wait behind none of them for longer.
const termCheckInterval = 250 * time.Millisecond

// checkTerm accepts a task's term if it is the current master's. The term
// the worker knows answers most tasks at once. A task of another term is not
// believed, whoever sent it: the master's term is read from etcd, and etcd's
// answer becomes the worker's term, higher (a new master's first tasks come
// before the election watch shows it) or lower (an etcd replaced by an empty
// one starts its terms from 1 again). One read at a time (under termMu),
// and at most one per termCheckInterval unless the election has shown a
// change of master since the last: in between, a task of another term is
// refused on the last answer. A cancel's term is checked the same way.
func (w *worker) checkTerm(term int64) error {
	cur := w.term.Load()
	if term == cur {
		return nil
	}
	w.termMu.Lock()
	defer w.termMu.Unlock()
	views := w.views.Load()
	if views != w.checkedViews || time.Since(w.checkedAt) >= termCheckInterval {
		ctx, cancel := context.WithTimeout(w.ctx, w.termCheckTimeout)
		master, err := w.masterTerm(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot check term %d in etcd: %w", term, err)
		}
		w.checkedAt, w.checkedViews = time.Now(), views
		if master > 0 {
			w.term.Store(master)
		}
		cur = w.term.Load()
	}
	switch {
	case term == cur:
		return nil
	case term < cur:
		return fmt.Errorf("stale term %d, the current master's is %d", term, cur)
	default:
		return fmt.Errorf("term %d is not the current master's (%d)", term, cur)
	}
}

// taskKey names a task the worker runs: its uuid and the fingerprint of
// its kind and payload (workPrint). Anyone may send a task with a known
// uuid and another payload (in open mode): it is another task, run on its
// own, and never taken for a sending of the first.
type taskKey struct {
	uuid  string
	print uint64
}

// sending is the term and attempt a task was last sent under.
type sending struct{ term, attempt int64 }

// runningTask is a task the worker took and has not done. w.mu guards its
// fields; once cancelled, it is out of running.
type runningTask struct {
	sending                           // the latest sending of the task
	cancel    context.CancelCauseFunc // ends the handler's context
	cancelled bool                    // the master cancelled it: it publishes no result
}

// raise keeps the later of s and task's sending. w.mu is held.
func (s *sending) raise(task message.Task) {
	if task.Term > s.term || task.Term == s.term && task.Attempt > s.attempt {
		s.term, s.attempt = task.Term, task.Attempt
	}
}

func (w *worker) publish(res message.Result) {
	if err := w.conn.Publish(message.SubjectResults, res.AppendJSON(make([]byte, 0, 256+len(res.Result)+len(res.Error)))); err != nil {
		w.log.Error("cannot publish result", ratelog.Limit, "uuid", res.UUID, "err", err)
	}
}

// refusal counts and logs a task refused, and returns its ack.
func (w *worker) refusal(reason string, attrs ...any) message.Ack {
	w.refused.Add(1)
	w.log.Warn("task refused", append(attrs, "reason", reason, ratelog.Limit)...)
	return message.Ack{Accepted: false, Reason: reason, Term: w.term.Load()}
}

func (w *worker) reply(msg *nats.Msg, ack message.Ack) {
	respond(msg, ack, w.log, slog.LevelWarn)
}

// stop takes no more tasks: later tasks are refused, and the subscriptions
// are removed so the master sees "no responders" at once.
func (w *worker) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.sub != nil {
		if err := w.sub.Unsubscribe(); err != nil {
			w.log.Warn("cannot unsubscribe from tasks", "err", err)
		}
	}
	if w.cancelSub != nil {
		if err := w.cancelSub.Unsubscribe(); err != nil {
			w.log.Warn("cannot unsubscribe from cancels", "err", err)
		}
	}
}

// finish waits for tasks in flight, at most grace; what is left is abandoned.
func (w *worker) finish(grace time.Duration) {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	if n := w.inFlight.Load(); n > 0 {
		w.log.Info("finishing tasks in flight", "tasks", n, "grace", grace)
	}
	select {
	case <-done:
	case <-time.After(grace):
		w.abandon()
		<-done
	}
	w.abandon()
}
