package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
	"github.com/meshpool/meshpool/taskstore"
)

// The master runs the recurring tasks (package schedule): it loads the
// schedules at the start of its term, fires each tick by submitting its
// task (whose uuid is the tick's: a tick fired again by a later master is
// a duplicate, not run twice), then records the tick fired, fenced like
// every write. Clients add, remove and list schedules over NATS.

// schedules is the master's schedules, by name.
type schedules struct {
	// write is held across a change of a schedule in etcd and in memory:
	// an add, a remove, a tick recorded. So a tick fired while its schedule
	// is removed never writes it back.
	write  sync.Mutex
	mu     sync.Mutex
	byName map[string]schedule.Schedule
	firing bool      // a pass of fire is under way
	first  time.Time // when the first is due, while fresh
	fresh  bool      // first is up to date: no schedule added, removed or fired since
	hold   time.Time // a tick was not submitted: no pass before this
}

// changedLocked marks first stale. s.mu is held.
func (s *schedules) changedLocked() { s.fresh = false }

// next is when the first schedule is due, now if one is due already;
// zero for none. It is worked out again only after a change.
func (s *schedules) next(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fresh {
		s.first, s.fresh = s.firstLocked(), true
	}
	switch {
	case s.first.IsZero():
		return s.first
	case s.hold.After(now) && s.hold.After(s.first):
		return s.hold
	case s.first.Before(now):
		return now
	}
	return s.first
}

func (s *schedules) firstLocked() time.Time {
	var first time.Time
	for _, sc := range s.byName {
		since := sc.Created
		if sc.Last.After(since) {
			since = sc.Last
		}
		n := sc.Next(since)
		if !n.IsZero() && (first.IsZero() || n.Before(first)) {
			first = n
		}
	}
	return first
}

// list returns the schedules sorted by name, each with its next tick.
func (s *schedules) list(now time.Time) []schedule.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]schedule.Entry, 0, len(s.byName))
	for _, sc := range s.byName {
		out = append(out, schedule.Entry{Schedule: sc, Next: sc.Next(now)})
	}
	slices.SortFunc(out, func(a, b schedule.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// loadSchedules reads the schedules an earlier master kept.
func (m *master) loadSchedules(ctx context.Context) error {
	list, err := m.records.Schedules(ctx)
	var bad *schedule.BadRecordsError
	if errors.As(err, &bad) {
		m.log.Error("schedules that do not decode are left out", "count", len(bad.Keys), "err", err)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("node: master cannot load schedules: %w", err)
	}
	m.sched.mu.Lock()
	defer m.sched.mu.Unlock()
	m.sched.byName = make(map[string]schedule.Schedule, len(list))
	for _, sc := range list {
		m.sched.byName[sc.Name] = sc
	}
	if len(list) > 0 {
		m.log.Info("schedules loaded", "count", len(list))
	}
	return nil
}

// fireDue fires, in the background, every schedule whose tick has come;
// one pass at a time.
func (m *master) fireDue(now time.Time) {
	if n := m.sched.next(now); n.IsZero() || n.After(now) {
		return
	}
	m.sched.mu.Lock()
	if m.sched.firing {
		m.sched.mu.Unlock()
		return
	}
	type due struct {
		sc      schedule.Schedule
		tick    time.Time
		skipped int
	}
	var todo []due
	for _, sc := range m.sched.byName {
		if tick, skipped, ok := sc.Due(now); ok {
			todo = append(todo, due{sc, tick, skipped})
		}
	}
	if len(todo) == 0 {
		m.sched.mu.Unlock()
		return
	}
	m.sched.firing = true
	m.sched.mu.Unlock()
	m.wg.Go(func() {
		defer func() {
			m.sched.mu.Lock()
			m.sched.firing = false
			m.sched.changedLocked()
			m.sched.mu.Unlock()
			m.table.signal() // the next tick may be due already
		}()
		for _, d := range todo {
			m.fire(d.sc, d.tick, d.skipped)
		}
	})
}

// fire submits sc's task for tick, then records the tick fired. A tick
// whose task is not accepted (etcd unreachable, the master full) is tried
// again at the next pass; the ticks skipped are counted.
func (m *master) fire(sc schedule.Schedule, tick time.Time, skipped int) {
	if skipped > 0 {
		m.stats.ticksSkipped.Add(int64(skipped))
		m.log.Warn("schedule ticks missed while no master ran are skipped: the latest fires", ratelog.Limit,
			"schedule", sc.Name, "skipped", skipped, "fires", tick)
	}
	reply, t, err := m.accept(sc.Submit(tick), message.MasterSubmitter)
	if err == nil && !reply.Accepted {
		err = errors.New(reply.Error)
	}
	if err != nil {
		if !errors.Is(err, errNotLeading) {
			m.log.Warn("schedule tick not submitted, will retry", ratelog.Limit, "schedule", sc.Name, "tick", tick, "err", err)
		}
		m.sched.mu.Lock()
		m.sched.hold = time.Now().Add(time.Second)
		m.sched.mu.Unlock()
		return
	}
	if t != nil {
		m.placeNow(t)
	}
	m.stats.ticksFired.Add(1)
	m.log.Info("schedule fired", "schedule", sc.Name, "tick", tick, "uuid", reply.UUID, "duplicate", reply.Duplicate)
	m.sched.write.Lock()
	defer m.sched.write.Unlock()
	m.sched.mu.Lock()
	cur, ok := m.sched.byName[sc.Name]
	if !ok || !cur.Created.Equal(sc.Created) {
		m.sched.mu.Unlock()
		return // removed (or replaced) meanwhile
	}
	cur.Last = tick
	m.sched.byName[sc.Name] = cur
	m.sched.changedLocked()
	m.sched.mu.Unlock()
	if err := m.putSchedule(cur); err != nil && !errors.Is(err, taskstore.ErrFenced) {
		// Not lost: a later master that fires this tick again submits its
		// uuid again, a duplicate.
		m.log.Warn("cannot record a schedule's tick", ratelog.Limit, "schedule", sc.Name, "tick", tick, "err", err)
	}
}

func (m *master) putSchedule(sc schedule.Schedule) error {
	v, err := sc.Encode()
	if err != nil {
		return err
	}
	return m.records.PutValue(m.ctx, keyspace.Schedule(m.prefix, sc.Name), v)
}

// scheduleHandlers are the subjects of the schedules' API and their handlers.
func (m *master) scheduleHandlers() map[string]nats.MsgHandler {
	fail := func(err error) schedule.Reply {
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: "invalid request: " + err.Error()}
	}
	return map[string]nats.MsgHandler{
		message.SubjectScheduleAdd: m.op(func(data []byte) any {
			sc, err := schedule.DecodeAdd(data, time.Now().UTC())
			if err != nil {
				return fail(err)
			}
			return m.addSchedule(sc)
		}),
		message.SubjectScheduleRemove: m.op(func(data []byte) any {
			req, err := schedule.DecodeRequest(data, true)
			if err != nil {
				return fail(err)
			}
			return m.removeSchedule(req.Name)
		}),
		message.SubjectScheduleList: m.op(func(data []byte) any {
			if _, err := schedule.DecodeRequest(data, false); err != nil {
				return fail(err)
			}
			return schedule.Reply{Schedules: m.sched.list(time.Now())}
		}),
	}
}

// addSchedule keeps a new schedule: in etcd first, then in memory.
func (m *master) addSchedule(sc schedule.Schedule) schedule.Reply {
	if len(sc.Payload) > m.maxPayload {
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: fmt.Sprintf("invalid request: payload is %d bytes, more than --max-payload %d", len(sc.Payload), m.maxPayload)}
	}
	m.sched.write.Lock()
	defer m.sched.write.Unlock()
	m.sched.mu.Lock()
	_, exists := m.sched.byName[sc.Name]
	n := len(m.sched.byName)
	m.sched.mu.Unlock()
	switch {
	case exists:
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: fmt.Sprintf("schedule %s exists: remove it first", sc.Name)}
	case n >= schedule.MaxSchedules:
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: fmt.Sprintf("%d schedules kept already, the most a cluster keeps", n)}
	}
	if err := m.putSchedule(sc); err != nil {
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: "cannot record the schedule: " + err.Error(), Temporary: true}
	}
	m.sched.mu.Lock()
	m.sched.byName[sc.Name] = sc
	m.sched.changedLocked()
	m.sched.mu.Unlock()
	m.table.signal() // the master's timer may need to fire earlier
	m.log.Info("schedule added", "schedule", sc.Name, "cron", sc.Cron, "kind", sc.Kind)
	return schedule.Reply{Schedules: []schedule.Entry{{Schedule: sc, Next: sc.Next(time.Now())}}}
}

// removeSchedule forgets a schedule: in etcd first, then in memory.
func (m *master) removeSchedule(name string) schedule.Reply {
	m.sched.write.Lock()
	defer m.sched.write.Unlock()
	m.sched.mu.Lock()
	sc, exists := m.sched.byName[name]
	m.sched.mu.Unlock()
	if !exists {
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: fmt.Sprintf("no schedule %s", name)}
	}
	if err := m.records.Delete(m.ctx, keyspace.Schedule(m.prefix, name)); err != nil {
		return schedule.Reply{Schedules: []schedule.Entry{}, Error: "cannot remove the schedule: " + err.Error(), Temporary: true}
	}
	m.sched.mu.Lock()
	delete(m.sched.byName, name)
	m.sched.changedLocked()
	m.sched.mu.Unlock()
	m.log.Info("schedule removed", "schedule", name)
	return schedule.Reply{Schedules: []schedule.Entry{{Schedule: sc}}}
}
