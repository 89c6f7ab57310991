package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// The operations on tasks any client may ask the master for, over NATS
// (message.SubjectGet, SubjectList, SubjectCancel, SubjectRetry): each is
// answered in the background, at most maxOps at once.

// maxOps bounds the operations answered at once; beyond, a request is
// answered busy (temporary).
const maxOps = 64

// opsHandlers are the subjects of the operations and their handlers.
func (m *master) opsHandlers() map[string]nats.MsgHandler {
	return map[string]nats.MsgHandler{
		message.SubjectGet: m.op(func(data []byte) any {
			req, err := message.DecodeGet(data)
			if err != nil {
				return message.TaskInfo{Error: "invalid request: " + err.Error()}
			}
			return m.get(req.UUID)
		}),
		message.SubjectList: m.op(func(data []byte) any {
			req, err := message.DecodeList(data)
			if err != nil {
				return message.ListReply{Tasks: []message.TaskInfo{}, Error: "invalid request: " + err.Error()}
			}
			return m.list(req)
		}),
		message.SubjectCancel: m.op(func(data []byte) any {
			req, err := message.DecodeCancelRequest(data)
			if err != nil {
				return message.TaskInfo{Error: "invalid request: " + err.Error()}
			}
			return m.cancel(req.UUID)
		}),
		message.SubjectRetry: m.op(func(data []byte) any {
			req, err := message.DecodeRetry(data)
			if err != nil {
				return message.RetryReply{Retried: []string{}, Error: "invalid request: " + err.Error()}
			}
			return m.retry(req)
		}),
	}
}

// busyReply is the answer to an operation beyond maxOps.
type busyReply struct {
	Error     string `json:"error"`
	Temporary bool   `json:"temporary"`
}

// op answers a request with do's answer, in the background. A deposed
// master does not answer: the real master does.
func (m *master) op(do func(data []byte) any) nats.MsgHandler {
	return func(msg *nats.Msg) {
		if msg.Reply == "" || m.badReply(msg.Reply) {
			m.stats.badReplies.Add(1)
			return
		}
		select {
		case m.ops <- struct{}{}:
		default:
			respond(msg, busyReply{Error: "busy: too many operations in progress", Temporary: true}, m.log, slog.LevelDebug)
			return
		}
		m.wg.Go(func() {
			defer func() { <-m.ops }()
			if !m.lead.Valid() {
				return
			}
			respond(msg, do(msg.Data), m.log, slog.LevelDebug)
		})
	}
}

// get tells what is known of task id: a live task from the table, a final
// one from etcd (its whole record), or from the done index for a task of
// durability none, which has no record.
func (m *master) get(id string) message.TaskInfo {
	ti, final, ok := m.table.info(id)
	if ok && (!final || ti.Durability == message.DurabilityNone) {
		return ti
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.ackTimeout)
	defer cancel()
	rec, found, err := m.records.Get(ctx, id)
	switch {
	case err != nil && !errors.Is(err, taskstore.ErrBadRecord):
		return message.TaskInfo{UUID: id, Error: "cannot read the task from etcd: " + err.Error(), Temporary: true}
	case err != nil:
		return message.TaskInfo{UUID: id, Error: err.Error()}
	case !found && ok:
		return ti // recorded in the done index, its record expired or deleted (--result-retention 0)
	case !found:
		return message.TaskInfo{UUID: id, Error: fmt.Sprintf("no task %s: never submitted, or its record's retention has passed", id)}
	}
	return info(rec, false)
}

// list gives the tasks in req.State of req.Kind, newest first: the live
// ones from the table, the final ones from their records in etcd (a read
// of every record: one listing at a time).
func (m *master) list(req message.ListRequest) message.ListReply {
	limit := req.Limit
	if limit == 0 {
		limit = message.DefaultListLimit
	}
	select {
	case m.scan <- struct{}{}:
		defer func() { <-m.scan }()
	default:
		return message.ListReply{Tasks: []message.TaskInfo{}, Error: "busy: another listing is under way; try again", Temporary: true}
	}
	tasks := m.table.live(req.State, req.Kind)
	if req.State == "" || message.Final(req.State) {
		recs, err := m.finalRecords(req.State, req.Kind)
		if err != nil {
			return message.ListReply{Tasks: []message.TaskInfo{}, Error: err.Error(), Temporary: true}
		}
		for _, r := range recs {
			tasks = append(tasks, listed(info(r, false)))
		}
	}
	slices.SortFunc(tasks, func(a, b message.TaskInfo) int {
		if c := b.Submitted.Compare(a.Submitted.Time); c != 0 {
			return c
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	reply := message.ListReply{Tasks: tasks}
	if len(tasks) > limit {
		reply.Tasks, reply.More = tasks[:limit], true
	}
	if reply.Tasks == nil {
		reply.Tasks = []message.TaskInfo{}
	}
	return reply
}

// finalRecords reads the final records in state (any final state when
// "") of kind (any when "") from etcd. The caller holds m.scan.
func (m *master) finalRecords(state, kind string) ([]taskstore.Record, error) {
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	recs, _, err := m.records.Load(ctx)
	var bad *taskstore.BadRecordsError
	if err != nil && !errors.As(err, &bad) {
		return nil, fmt.Errorf("cannot read the task records from etcd: %w", err)
	}
	out := recs[:0]
	for _, r := range recs {
		if r.State.Final() && (state == "" || string(r.State) == state) && (kind == "" || r.Kind == kind) {
			out = append(out, r)
		}
	}
	return out, nil
}

// listed is a task as a listing shows it: no payload, no result, only the
// last error, cut short.
func listed(ti message.TaskInfo) message.TaskInfo {
	ti.Payload, ti.Result = nil, nil
	if n := len(ti.Errors); n > 0 {
		last := ti.Errors[n-1]
		last.Error = lastError(ti.Errors)
		ti.Errors = []message.AttemptError{last}
	}
	return ti
}

// cancel cancels task id: a pending or retrying task is recorded
// cancelled and never runs; a running one too, and its worker is told to
// stop it (its handler's context is cancelled). A final task is left as it
// is.
func (m *master) cancel(id string) message.TaskInfo {
	deadline := time.Now().Add(2 * m.ackTimeout)
	var t *tracked
	for {
		t = m.table.lookup(id)
		if t == nil {
			ti := m.get(id)
			if ti.Error == "" {
				ti.Error = fmt.Sprintf("task %s is %s: nothing to cancel", id, ti.State)
			}
			return ti
		}
		// Wait for a placement or a recording under way to end.
		if m.table.claimIf(t, func(t *tracked) bool { return t.result == nil && t.lost == nil }) {
			break
		}
		if time.Now().After(deadline) {
			return message.TaskInfo{UUID: id, Error: "busy: the task is being placed or recorded; try again", Temporary: true}
		}
		select {
		case <-m.ctx.Done():
			return message.TaskInfo{UUID: id, Error: "not the master any more; try again", Temporary: true}
		case <-time.After(5 * time.Millisecond):
		}
	}
	now := time.Now()
	cur, _, _ := m.table.current(t)
	rec := m.table.cancelled(t, m.term, now)
	err := m.write(t, rec)
	m.table.settled(t, rec, nil, err == nil, now.Add(m.failedRetention), now)
	if err != nil {
		return message.TaskInfo{UUID: id, Error: "cannot record the cancel: " + err.Error(), Temporary: true}
	}
	m.stats.cancelled.Add(1)
	m.stats.inFlight.Add(-1)
	m.log.Info("task cancelled", "uuid", id, "kind", rec.Kind, "was", cur.State)
	if cur.State == taskstore.Running && m.cancelOn != nil {
		c := message.Cancel{UUID: id, Executor: cur.Executor, Term: m.term, Attempt: int64(cur.Attempts)}
		m.wg.Go(func() {
			if err := m.cancelOn(m.ctx, c); err != nil {
				m.log.Warn("cannot tell the worker to stop a cancelled task: its result will be dropped", ratelog.Limit,
					"uuid", id, "worker", c.Executor, "err", err)
			}
		})
	}
	return info(rec, t.ephemeral)
}

// retry makes failed or cancelled tasks pending again with fresh
// attempts: one by uuid, or those in req.State of req.Kind, up to its
// limit.
func (m *master) retry(req message.RetryRequest) message.RetryReply {
	reply := message.RetryReply{Retried: []string{}}
	if req.UUID != "" {
		if err := m.retryOne(req.UUID); err != nil {
			reply.Error = err.Error()
			reply.Temporary = isTemporary(err)
			return reply
		}
		reply.Retried = append(reply.Retried, req.UUID)
		return reply
	}
	limit := req.Limit
	if limit == 0 {
		limit = message.DefaultListLimit
	}
	select {
	case m.scan <- struct{}{}:
	default:
		return message.RetryReply{Retried: []string{}, Error: "busy: a listing is under way; try again", Temporary: true}
	}
	recs, err := m.finalRecords(req.State, req.Kind)
	<-m.scan
	if err != nil {
		return message.RetryReply{Retried: []string{}, Error: err.Error(), Temporary: true}
	}
	for _, r := range recs {
		if len(reply.Retried) == limit {
			break
		}
		// The snapshot may be stale by now: each is read again.
		err := m.retryOne(r.UUID)
		switch {
		case errors.Is(err, errNotFinal):
			continue // retried or done meanwhile
		case err != nil:
			reply.Error = fmt.Sprintf("task %s: %s (%d retried before it)", r.UUID, err, len(reply.Retried))
			reply.Temporary = isTemporary(err)
			return reply
		}
		reply.Retried = append(reply.Retried, r.UUID)
	}
	return reply
}

// errNotFinal refuses to retry a task that is not failed or cancelled.
var errNotFinal = errors.New("only a failed or cancelled task is retried")

// temporaryError marks an error after which the same request may succeed.
type temporaryError struct{ error }

func (e temporaryError) Unwrap() error { return e.error }

func isTemporary(err error) bool {
	var t temporaryError
	return errors.As(err, &t)
}

// retryOne makes task id pending again, if it is failed or cancelled: its
// record is read from etcd and written back pending with one retry at a
// time, so two retries never both start from the same record.
func (m *master) retryOne(id string) error {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	ti, final, ok := m.table.info(id)
	switch {
	case ok && !final:
		return fmt.Errorf("%w: task %s is %s: nothing to retry", errNotFinal, id, ti.State)
	case ok && ti.Durability == message.DurabilityNone:
		return fmt.Errorf("task %s is of durability none: its payload is not kept; submit it again", id)
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.ackTimeout)
	defer cancel()
	rec, found, err := m.records.Get(ctx, id)
	switch {
	case err != nil && !errors.Is(err, taskstore.ErrBadRecord):
		return temporaryError{fmt.Errorf("cannot read the task from etcd: %w", err)}
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("no task %s: never submitted, or its record's retention has passed", id)
	}
	return m.again(rec)
}

// again makes the failed or cancelled task of record rec pending again,
// with --max-attempts more attempts and its errors kept, and places it.
func (m *master) again(rec taskstore.Record) error {
	if rec.State != taskstore.Failed && rec.State != taskstore.Cancelled {
		return fmt.Errorf("%w: task %s is %s", errNotFinal, rec.UUID, rec.State)
	}
	if rec.Attempts >= message.MaxAttempts {
		return fmt.Errorf("task %s has had %d attempts, the most a task gets", rec.UUID, rec.Attempts)
	}
	now := time.Now()
	// Its attempts go on counting, so that no attempt number is sent twice
	// for one uuid (workers tell a new attempt from an old one by it), with
	// --max-attempts more.
	rec.MaxAttempts = min(rec.Attempts+m.policy.maxAttempts, message.MaxAttempts)
	rec.State, rec.Result, rec.Term = taskstore.Pending, nil, m.term
	rec.Started, rec.Finished, rec.NotBefore = time.Time{}, time.Time{}, time.Time{}
	t, err := m.table.readmit(rec, now)
	if err != nil {
		if errors.Is(err, errLive) {
			return fmt.Errorf("%w: %w", errNotFinal, err)
		}
		return temporaryError{err}
	}
	if err := m.records.Put(m.ctx, t.rec); err != nil {
		m.table.drop(t)
		if errors.Is(err, taskstore.ErrFenced) || m.ctx.Err() != nil {
			return temporaryError{errNotLeading}
		}
		m.stats.recordFailures.Add(1)
		return temporaryError{fmt.Errorf("cannot record the task: %w", err)}
	}
	m.table.accepted(t)
	m.stats.rerun.Add(1)
	m.stats.inFlight.Add(1)
	m.log.Info("task retried by request", "uuid", rec.UUID, "kind", rec.Kind)
	m.wg.Go(func() { m.placeNow(t) })
	return nil
}
