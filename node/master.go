package node

import (
	"context"
	"encoding/json"
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

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
)

// masterStats are the master's counters; they outlive one term.
type masterStats struct {
	dispatched   atomic.Int64
	completed    atomic.Int64
	redispatched atomic.Int64
	skipped      atomic.Int64
	inFlight     atomic.Int64
}

// master runs the master duties for one term. It lives exactly as long as
// the leadership context it runs under.
type master struct {
	id         string
	term       int64
	conn       *nats.Conn
	membership func() (registry.Membership, <-chan struct{})
	interval   time.Duration
	ackTimeout time.Duration
	log        *slog.Logger
	stats      *masterStats

	mu       sync.Mutex
	inFlight map[string]*flight // by task uuid
}

// flight is a task that has been acked and has no result yet.
type flight struct {
	task message.Task
	sent time.Time
}

var errNoWorker = errors.New("no worker accepted the task")

// run does the master's work until ctx ends. Tasks still in flight when it
// returns are not lost by the workers: their results are still published.
func (m *master) run(ctx context.Context) error {
	m.inFlight = make(map[string]*flight)
	sub, err := m.conn.Subscribe(message.SubjectResults, m.onResult)
	if err != nil {
		return fmt.Errorf("node: master cannot subscribe to results: %w", err)
	}
	defer func() {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			m.log.Warn("cannot unsubscribe from results", "err", err)
		}
		m.mu.Lock()
		m.stats.inFlight.Add(-int64(len(m.inFlight)))
		m.mu.Unlock()
	}()

	var tick <-chan time.Time
	if m.interval > 0 {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		tick = t.C
	}
	_, changed := m.membership()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			m.generate(ctx)
		case <-changed:
			var mem registry.Membership
			mem, changed = m.membership()
			m.reassign(ctx, mem)
		}
	}
}

// generate makes one demo task and hands it to a worker.
func (m *master) generate(ctx context.Context) {
	if len(m.workers()) == 0 {
		m.stats.skipped.Add(1)
		m.log.Info("no workers, skip task generation")
		return
	}
	task := message.Task{UUID: uuid.NewString(), Number: 30 + rand.Int64N(31), Term: m.term}
	if err := m.dispatch(ctx, task); err != nil {
		m.log.Warn("task not placed", "uuid", task.UUID, "err", err)
	}
}

// reassign gives the tasks of workers that left the membership to others.
func (m *master) reassign(ctx context.Context, mem registry.Membership) {
	m.mu.Lock()
	var orphans []message.Task
	for _, f := range m.inFlight {
		if _, ok := mem.Lookup(f.task.Executor); !ok {
			orphans = append(orphans, f.task)
		}
	}
	m.mu.Unlock()
	for _, t := range orphans {
		m.log.Info("worker left, giving its task to another", "uuid", t.UUID, "worker", t.Executor)
		m.forget(t.UUID)
		m.stats.redispatched.Add(1)
		if err := m.dispatch(ctx, t); err != nil {
			m.log.Warn("task not placed", "uuid", t.UUID, "err", err)
		}
	}
}

// dispatch sends task to the least busy worker that accepts it, trying the
// next one on no responders, a timeout or a refusal.
func (m *master) dispatch(ctx context.Context, task message.Task) error {
	for _, w := range m.order(m.workers()) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		task.Executor = w
		err := m.send(ctx, task)
		if err == nil {
			return nil
		}
		m.log.Debug("worker did not take the task", "uuid", task.UUID, "worker", w, "err", err)
	}
	return errNoWorker
}

func (m *master) send(ctx context.Context, task message.Task) error {
	body, err := json.Marshal(task)
	if err != nil {
		return fmt.Errorf("cannot encode task: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, m.ackTimeout)
	defer cancel()
	reply, err := m.conn.RequestWithContext(rctx, message.TaskSubject(task.Executor), body)
	if err != nil {
		return err
	}
	ack, err := message.DecodeAck(reply.Data)
	if err != nil {
		return fmt.Errorf("bad ack: %w", err)
	}
	if !ack.Accepted {
		if ack.Term > m.term {
			m.log.Warn("a worker has seen a newer term than ours", "worker", task.Executor, "ours", m.term, "theirs", ack.Term)
		}
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	m.mu.Lock()
	m.inFlight[task.UUID] = &flight{task: task, sent: time.Now()}
	m.mu.Unlock()
	m.stats.inFlight.Add(1)
	m.stats.dispatched.Add(1)
	m.log.Info("task sent", "uuid", task.UUID, "executor", task.Executor, "number", task.Number, "term", task.Term)
	return nil
}

func (m *master) onResult(msg *nats.Msg) {
	res, err := message.DecodeResult(msg.Data)
	if err != nil {
		m.log.Warn("bad result refused", "err", err)
		return
	}
	f := m.forget(res.UUID)
	if f == nil {
		m.log.Info("result for a task this master is not tracking", "uuid", res.UUID, "executor", res.Executor, "term", res.Term)
		return
	}
	m.stats.completed.Add(1)
	m.log.Info("result", "uuid", res.UUID, "executor", res.Executor, "number", res.Number, "result", res.Result,
		"start", res.Start, "finish", res.Finish, "latency", time.Since(f.sent).Round(time.Millisecond))
	if res.Result != f.task.Number*3 || res.Executor != f.task.Executor {
		m.log.Warn("result does not match the task sent", "uuid", res.UUID, "sent_to", f.task.Executor, "number", f.task.Number)
	}
}

// forget stops tracking a task and returns it, or nil if it was not tracked.
func (m *master) forget(id string) *flight {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.inFlight[id]
	if f != nil {
		delete(m.inFlight, id)
		m.stats.inFlight.Add(-1)
	}
	return f
}

func (m *master) workers() []string {
	mem, _ := m.membership()
	others := mem.Others(m.id)
	ids := make([]string, len(others))
	for i, r := range others {
		ids[i] = r.ID
	}
	return ids
}

// order sorts workers by tasks in flight, fewest first, random among equals.
func (m *master) order(workers []string) []string {
	load := make(map[string]int, len(workers))
	m.mu.Lock()
	for _, f := range m.inFlight {
		load[f.task.Executor]++
	}
	m.mu.Unlock()
	return leastLoaded(workers, load)
}

// leastLoaded returns workers ordered by load, fewest first, shuffled among
// equals so no worker is always first.
func leastLoaded(workers []string, load map[string]int) []string {
	out := append([]string(nil), workers...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	sort.SliceStable(out, func(i, j int) bool { return load[out[i]] < load[out[j]] })
	return out
}
