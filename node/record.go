package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

func (m *master) onResult(msg *nats.Msg) {
	res, err := message.DecodeResult(msg.Data)
	if err != nil {
		if errors.Is(err, message.ErrVersion) {
			m.stats.badVersion.Add(1)
		}
		m.stats.badResults.Add(1)
		m.log.Warn("bad result refused", ratelog.Limit, "err", err)
		return
	}
	m.takeResult(res)
}

// takeResult records res when it is the first valid result of a pending
// task (see checkResult), or keeps it for whoever holds the task's claim.
func (m *master) takeResult(res message.Result) {
	t, p, what, why, recordNow := m.table.resultIn(res, m.term)
	switch what {
	case refused:
		m.stats.refusedResults.Add(1)
		m.log.Warn("result refused", ratelog.Limit, "uuid", res.UUID, "executor", res.Executor,
			"term", res.Term, "attempt", res.Attempt, "reason", why)
	case duplicate:
		m.stats.dupResults.Add(1)
		m.log.Debug("duplicate result suppressed", "uuid", res.UUID, "executor", res.Executor)
	case untracked:
		m.log.Info("result for a task this master does not track", ratelog.Limit, "uuid", res.UUID, "executor", res.Executor, "term", res.Term)
	case kept:
		if p.timedOut {
			m.stats.lateResults.Add(1)
			m.log.Warn("result came after its task timed out and was sent again: the work takes longer than --task-timeout", ratelog.Limit,
				"uuid", res.UUID, "executor", res.Executor, "task_timeout", m.taskTimeout, "took", res.Finish.Sub(res.Start.Time))
		}
		if recordNow {
			m.wg.Go(func() { m.record(t) })
		}
	}
}

// checkResult says why res cannot be t's result, or returns the sending it
// answers: a result is recorded only from a worker the task was sent to,
// for the term and attempt it was sent under, and of the task's kind (for
// the demo kind, of its number, and the work rule's answer). The first
// such result wins, even from a sending that timed out: it is real work;
// but an error from a sending that timed out is refused, since the task is
// with another worker, whose answer is awaited. The table's lock is held.
func checkResult(t *tracked, res message.Result, term int64) (placement, string) {
	switch {
	case res.Kind != t.rec.Kind:
		return placement{}, fmt.Sprintf("kind %s is not the task's %s", res.Kind, t.rec.Kind)
	case t.rec.Kind == message.KindTriple && res.Number != t.rec.Number:
		return placement{}, fmt.Sprintf("number %d is not the task's %d", res.Number, t.rec.Number)
	case t.rec.Kind == message.KindTriple && res.Error == "" && !message.IsTripleResult(res.Number, res.Result):
		return placement{}, fmt.Sprintf("result %s is not the work rule's %d", ratelog.Truncate(string(res.Result)), message.Work(res.Number))
	case res.Term != term:
		return placement{}, fmt.Sprintf("term %d is not this master's %d", res.Term, term)
	}
	p, ok := t.sentLocked(res.Executor, res.Attempt)
	switch {
	case !ok:
		return placement{}, fmt.Sprintf("the task was not sent to %s as attempt %d in this term", res.Executor, res.Attempt)
	case p.timedOut && res.Error != "":
		return p, fmt.Sprintf("an error after the task timed out on %s and went to another worker: %s", res.Executor, ratelog.Truncate(res.Error))
	}
	return p, ""
}

// record writes the outcome of t's attempt, once: its result (done), or
// its error or lost attempt (retrying or failed); t is claimed. When the
// write failed, t stays as it was, its outcome kept for the next rescue.
func (m *master) record(t *tracked) {
	for again := true; again; {
		again = m.recordOnce(t)
	}
}

func (m *master) recordOnce(t *tracked) (again bool) {
	now := time.Now()
	rec, res := m.table.toRecord(t, m.term, now, m.policy)
	err := m.write(t, rec)
	keep := now.Add(m.retention)
	if rec.State != taskstore.Done {
		keep = now.Add(m.failedRetention)
	}
	sent, again := m.table.settled(t, rec, res, err == nil, keep, now)
	if err != nil {
		return false
	}
	latency := time.Duration(0)
	if !sent.IsZero() {
		latency = time.Since(sent)
		if m.latency != nil && rec.State == taskstore.Done {
			m.latency(rec.Kind, latency)
		}
		latency = latency.Round(time.Millisecond)
	}
	switch rec.State {
	case taskstore.Done:
		m.stats.completed.Add(1)
		m.stats.inFlight.Add(-1)
		m.log.Info("result", "uuid", rec.UUID, "executor", res.Executor, "kind", rec.Kind, "result", logText(res.Result),
			"attempt", rec.Attempts, "start", res.Start, "finish", res.Finish, "latency", latency)
	case taskstore.Failed:
		m.stats.completed.Add(1)
		m.stats.inFlight.Add(-1)
		m.stats.errResults.Add(1)
		m.log.Warn("task failed", ratelog.Limit, "uuid", rec.UUID, "kind", rec.Kind, "attempts", rec.Attempts,
			"error", lastError(rec.Errors), "permanent", res != nil && res.Permanent)
	case taskstore.Retrying:
		m.stats.retried.Add(1)
		m.log.Info("task attempt failed, will retry", "uuid", rec.UUID, "kind", rec.Kind, "attempt", rec.Attempts,
			"error", lastError(rec.Errors), "next", rec.NotBefore.Sub(now).Round(time.Millisecond))
	}
	return again
}

// write records rec, fenced by the term: Complete for a final state, Put
// for a live one; an ephemeral task is written nowhere.
func (m *master) write(t *tracked, rec taskstore.Record) error {
	var err error
	switch {
	case !m.lead.Valid():
		err = errNotLeading
	case t.ephemeral:
	case rec.State.Final():
		err = m.records.Complete(m.ctx, rec)
	default:
		err = m.records.Put(m.ctx, rec)
	}
	if err != nil && !errors.Is(err, errNotLeading) && !errors.Is(err, taskstore.ErrFenced) && m.ctx.Err() == nil {
		m.stats.recordFailures.Add(1)
		m.log.Warn("cannot record a task's state, will retry", ratelog.Limit, "uuid", rec.UUID, "state", rec.State, "err", err)
	}
	return err
}
