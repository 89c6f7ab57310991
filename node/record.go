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

// record writes the task's result, once; t is claimed. After it the task
// is in the done set, or, when the write failed, pending with its result
// kept for the next rescue.
func (m *master) record(t *tracked) {
	rec := m.table.toRecord(t, m.term)
	err := errNotLeading
	switch {
	case !m.lead.Valid():
	case t.ephemeral:
		err = nil
	default:
		err = m.records.Complete(m.ctx, rec)
	}
	sent := m.table.finish(t, err == nil, time.Now().Add(m.retention))
	if err != nil {
		if !errors.Is(err, errNotLeading) && !errors.Is(err, taskstore.ErrFenced) && m.ctx.Err() == nil {
			m.stats.recordFailures.Add(1)
			m.log.Warn("cannot record result, will retry", ratelog.Limit, "uuid", rec.UUID, "err", err)
		}
		return
	}
	m.stats.completed.Add(1)
	m.stats.inFlight.Add(-1)
	res := rec.Result
	if res.Error != "" {
		m.stats.errResults.Add(1)
	}
	var latency time.Duration
	if !sent.IsZero() {
		d := time.Since(sent)
		if m.latency != nil {
			m.latency(d)
		}
		latency = d.Round(time.Millisecond)
	}
	if res.Error != "" {
		m.log.Info("result", "uuid", res.UUID, "executor", res.Executor, "kind", res.Kind, "error", res.Error,
			"start", res.Start, "finish", res.Finish, "latency", latency)
		return
	}
	m.log.Info("result", "uuid", res.UUID, "executor", res.Executor, "kind", res.Kind, "result", logText(res.Result),
		"start", res.Start, "finish", res.Finish, "latency", latency)
}
