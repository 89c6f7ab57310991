package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// The life of a task on the master, with fakes for its records and its
// sendings (fakes_test.go): no etcd, no NATS.

func TestBackoffGrowsToItsCapWithJitter(t *testing.T) {
	base, cap := 100*time.Millisecond, time.Second
	for _, tt := range []struct {
		attempt  int
		rnd      float64
		want     time.Duration
		describe string
	}{
		{1, 1, 101 * time.Millisecond, "attempt 1, no jitter taken off: the base"},
		{1, 0, 51 * time.Millisecond, "attempt 1, all the jitter: half the base"},
		{2, 1, 201 * time.Millisecond, "attempt 2: twice the base"},
		{4, 1, 801 * time.Millisecond, "attempt 4: eight times"},
		{5, 1, 1001 * time.Millisecond, "attempt 5: the cap"},
		{60, 1, 1001 * time.Millisecond, "attempt 60: the cap, no overflow"},
	} {
		if got := backoffAfter(tt.attempt, base, cap, func() float64 { return tt.rnd }); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.describe, got, tt.want)
		}
	}
}

func TestAfterFailure(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	p := lifePolicy{maxAttempts: 3, timeout: time.Minute, backoff: time.Second, backoffMax: time.Minute}
	running := taskstore.Record{UUID: testUUID, Kind: "k", State: taskstore.Running, Executor: "w-a", Attempts: 1}
	res := &message.Result{Error: "boom", Executor: "w-a", Attempt: 1}
	f := failure{executor: "w-a", attempt: 1, err: "boom", result: res}
	one := func() float64 { return 1 }

	r := afterFailure(running, f, now, p, one)
	if r.State != taskstore.Retrying || !r.NotBefore.Equal(now.Add(time.Second+time.Millisecond)) || r.Result != nil ||
		len(r.Errors) != 1 || r.Errors[0].Error != "boom" || r.MaxAttempts != 3 {
		t.Fatalf("after attempt 1 of 3: %+v; want retrying in 1s with its error", r)
	}
	r.Attempts = 3
	if r = afterFailure(r, f, now, p, one); r.State != taskstore.Failed || r.Result != res || !r.Finished.Equal(now) || len(r.Errors) != 2 {
		t.Fatalf("after the last attempt: %+v; want failed with its result", r)
	}
	f.permanent = true
	if r = afterFailure(running, f, now, p, one); r.State != taskstore.Failed || r.Attempts != 1 {
		t.Fatalf("after a permanent error: %+v; want failed at attempt 1", r)
	}
	// Only the last MaxErrorsKept errors are kept, oldest first.
	r = running
	r.MaxAttempts = 100
	for i := 1; i <= 9; i++ {
		r.Attempts = i
		r = afterFailure(r, failure{attempt: i, err: fmt.Sprint("e", i)}, now, p, one)
	}
	if len(r.Errors) != message.MaxErrorsKept || r.Errors[0].Attempt != 5 || r.Errors[4].Attempt != 9 {
		t.Fatalf("errors kept %+v; want attempts 5 to 9", r.Errors)
	}
}

// lifeMaster is a master with workers w-a and w-b, whose records keep the
// last write of each task, and whose sendings are kept.
func lifeMaster(t *testing.T, change func(*masterConfig)) (*master, *sendings, *store) {
	sent, st := &sendings{}, &store{recs: map[string]taskstore.Record{}}
	m := testMaster(t, func(c *masterConfig) {
		c.send = sent.send
		c.records = &fakeRecords{put: st.put, complete: st.put, get: st.get}
		c.policy = lifePolicy{maxAttempts: 3, timeout: 30 * time.Second, backoff: 10 * time.Millisecond, backoffMax: 100 * time.Millisecond}
		if change != nil {
			change(c)
		}
	})
	m.table.setWorkers(workers("w-a", "w-b"))
	return m, sent, st
}

// store keeps the last record written of each task, and every state
// written in order.
type store struct {
	mu     sync.Mutex
	recs   map[string]taskstore.Record
	states []taskstore.State
}

func (s *store) put(r taskstore.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.UUID] = r
	s.states = append(s.states, r.State)
	return nil
}

func (s *store) get(id string) (taskstore.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	return r, ok, nil
}

func (s *store) written() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.states)
}

// submitKind submits a durable task of kind k with opts and fails unless
// it is accepted.
func submitKind(t *testing.T, m *master, id string, opts message.Options) message.SubmitReply {
	t.Helper()
	var reply message.SubmitReply
	m.submit(message.Submit{UUID: id, Kind: message.KindTriple, Payload: json.RawMessage("5"), Number: 5, Options: opts}, "",
		func(r message.SubmitReply) { reply = r })
	m.wg.Wait()
	if !reply.Accepted {
		t.Fatalf("not accepted: %+v", reply)
	}
	return reply
}

// failedResult is task's error result from its worker.
func failedResult(task message.Task, err string, permanent bool) message.Result {
	r := resultOf(task)
	r.Result, r.Error, r.Permanent = nil, err, permanent
	return r
}

// retryDue lets task id's backoff end and places it again.
func retryDue(t *testing.T, m *master, id string) {
	t.Helper()
	task := m.table.lookup(id)
	if task == nil || task.rec.State != taskstore.Retrying {
		t.Fatalf("task %s is not retrying", id)
	}
	m.table.due(task.rec.NotBefore)
	m.dispatch()
	m.wg.Wait()
}

// A task whose handler fails twice, then succeeds, is done after three
// attempts, each recorded: running, retrying, running, retrying, running,
// done; its attempts went to another worker each time.
func TestFailingTaskIsRetriedUntilDone(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	submitKind(t, m, testUUID, message.Options{})
	for i := 0; i < 2; i++ {
		tasks := sent.all()
		m.takeResult(failedResult(tasks[len(tasks)-1], fmt.Sprint("boom ", i+1), false))
		m.wg.Wait()
		retryDue(t, m, testUUID)
	}
	tasks := sent.all()
	if len(tasks) != 3 || tasks[2].Attempt != 3 || tasks[0].Executor == tasks[1].Executor || tasks[1].Executor == tasks[2].Executor {
		t.Fatalf("sendings %+v; want attempts 1, 2, 3, each on another worker", tasks)
	}
	m.takeResult(resultOf(tasks[2]))
	m.wg.Wait()
	if got := st.written(); got != "[running retrying running retrying running done]" {
		t.Fatalf("states written %s", got)
	}
	rec := st.recs[testUUID]
	if rec.Attempts != 3 || len(rec.Errors) != 2 || rec.Errors[1].Error != "boom 2" || rec.Result == nil {
		t.Fatalf("record %+v; want done at attempt 3, its two errors kept", rec)
	}
	if r, d := m.stats.retried.Load(), m.stats.completed.Load(); r != 2 || d != 1 {
		t.Fatalf("retried %d, completed %d; want 2 and 1", r, d)
	}
}

// A repeat of an attempt's error (its worker publishes it again) is not a
// second failure.
func TestAnAttemptFailsOnce(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	submitKind(t, m, testUUID, message.Options{})
	res := failedResult(sent.all()[0], "boom", false)
	m.takeResult(res)
	m.wg.Wait()
	m.takeResult(res)
	m.wg.Wait()
	if got := st.written(); got != "[running retrying]" {
		t.Fatalf("states written %s, want one retry", got)
	}
}

// A permanent error fails the task at once; so does the last attempt's.
func TestPermanentErrorAndLastAttemptFail(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	submitKind(t, m, testUUID, message.Options{})
	m.takeResult(failedResult(sent.all()[0], "bad input", true))
	m.wg.Wait()
	if rec := st.recs[testUUID]; rec.State != taskstore.Failed || rec.Attempts != 1 || rec.Result.Error != "bad input" {
		t.Fatalf("record %+v; want failed at attempt 1", rec)
	}
	const other = "00000000-0000-4000-8000-000000000002"
	submitKind(t, m, other, message.Options{MaxAttempts: 1})
	tasks := sent.all()
	m.takeResult(failedResult(tasks[len(tasks)-1], "boom", false))
	m.wg.Wait()
	if rec := st.recs[other]; rec.State != taskstore.Failed {
		t.Fatalf("record %+v; want failed after its only attempt", rec)
	}
	// A re-submission of a failed uuid is answered with its state, and
	// not run again.
	reply := submitKind(t, m, other, message.Options{})
	if !reply.Duplicate || reply.State != message.StateFailed || reply.Result == nil || reply.Result.Error != "boom" {
		t.Fatalf("re-submission answered %+v; want a duplicate, failed, with its error", reply)
	}
}

// A delayed task is pending, not placed, until its time.
func TestDelayedTaskWaitsForItsTime(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	reply := submitKind(t, m, testUUID, message.Options{Delay: message.Duration(time.Hour)})
	if reply.State != message.StatePending || len(sent.all()) != 0 {
		t.Fatalf("answered %+v, sent %d; want pending, unsent", reply, len(sent.all()))
	}
	rec := st.recs[testUUID]
	if d := time.Until(rec.NotBefore); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("not before %s, want in an hour", rec.NotBefore)
	}
	m.dispatch()
	m.rescue(time.Now())
	m.wg.Wait()
	if n := len(sent.all()); n != 0 {
		t.Fatalf("sent %d before its time", n)
	}
	if next := m.table.due(rec.NotBefore.Add(-time.Millisecond)); !next.Equal(rec.NotBefore) {
		t.Fatalf("next due %s, want %s", next, rec.NotBefore)
	}
	m.table.due(rec.NotBefore)
	m.dispatch()
	m.wg.Wait()
	if tasks := sent.all(); len(tasks) != 1 || tasks[0].Attempt != 1 {
		t.Fatalf("sendings %+v at its time; want attempt 1", tasks)
	}
}

// Under a backlog, a kind's higher priorities go first; a low priority
// that has waited long enough goes before fresh high ones.
func TestPrioritiesUnderABacklog(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{})
	tt.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"x"}, Slots: 1}})
	now := time.Now()
	busy := admitTest(tt, message.Submit{UUID: "00000000-0000-4000-8000-000000000000", Kind: "x", Payload: json.RawMessage("1")}, now)
	tt.release(busy.t)
	var ts []*tracked
	for i, p := range []int{0, 5, 9, 5} {
		sub := message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), Kind: "x", Payload: json.RawMessage("1"),
			Options: message.Options{Priority: p}}
		a := admitTest(tt, sub, now)
		tt.placed(a.t, noSlot, now)
		ts = append(ts, a.t)
	}
	freeSlot := func() {
		tt.mu.Lock()
		delete(tt.book.load, "w-a")
		tt.mu.Unlock()
	}
	var order []int
	for range ts {
		freeSlot()
		got, _ := tt.nextWaiting(now)
		if got == nil {
			t.Fatal("nothing taken with a free slot")
		}
		order = append(order, got.rec.Priority)
	}
	if fmt.Sprint(order) != "[9 5 5 0]" {
		t.Fatalf("order %v; want [9 5 5 0]", order)
	}
	// Aging: a priority 0 task waiting ten steps goes before a fresh 9.
	old := admitTest(tt, message.Submit{UUID: "00000000-0000-4000-8000-000000000010", Kind: "x", Payload: json.RawMessage("1")}, now)
	tt.placed(old.t, noSlot, now)
	later := now.Add(11 * agingStep)
	fresh := admitTest(tt, message.Submit{UUID: "00000000-0000-4000-8000-000000000011", Kind: "x", Payload: json.RawMessage("1"),
		Options: message.Options{Priority: 9}}, later)
	tt.placed(fresh.t, noSlot, later)
	freeSlot()
	if got, _ := tt.nextWaiting(later); got != old.t {
		t.Fatalf("took priority %d; want the old priority 0 task first", got.rec.Priority)
	}
}

// Cancel: a pending task never runs; a running one is recorded cancelled
// and its worker told to stop it; a final one is left as it is.
func TestCancel(t *testing.T) {
	var mu sync.Mutex
	var told []message.Cancel
	m, sent, st := lifeMaster(t, func(c *masterConfig) {
		c.cancelOn = func(_ context.Context, cn message.Cancel) error {
			mu.Lock()
			told = append(told, cn)
			mu.Unlock()
			return nil
		}
	})
	const delayed = "00000000-0000-4000-8000-000000000002"
	submitKind(t, m, delayed, message.Options{Delay: message.Duration(time.Hour)})
	if ti := m.cancel(delayed); ti.Error != "" || ti.State != message.StateCancelled {
		t.Fatalf("cancel of a delayed task: %+v", ti)
	}
	m.table.due(time.Now().Add(2 * time.Hour))
	m.dispatch()
	m.wg.Wait()
	if n := len(sent.all()); n != 0 {
		t.Fatalf("a cancelled task was sent %d times", n)
	}
	submitKind(t, m, testUUID, message.Options{})
	task := sent.all()[0]
	ti := m.cancel(testUUID)
	m.wg.Wait()
	if ti.Error != "" || ti.State != message.StateCancelled || st.recs[testUUID].State != taskstore.Cancelled {
		t.Fatalf("cancel of a running task: %+v", ti)
	}
	mu.Lock()
	if len(told) != 1 || told[0].Executor != task.Executor || told[0].UUID != testUUID || told[0].Term != 7 {
		t.Fatalf("workers told %+v; want %s told to stop %s", told, task.Executor, testUUID)
	}
	mu.Unlock()
	m.takeResult(resultOf(task)) // its result, too late
	m.wg.Wait()
	if st.recs[testUUID].State != taskstore.Cancelled || m.stats.dupResults.Load() != 1 {
		t.Fatal("a cancelled task's late result was recorded")
	}
	if ti := m.cancel(testUUID); !strings.Contains(ti.Error, "nothing to cancel") {
		t.Fatalf("cancel of a cancelled task: %+v", ti)
	}
	if m.table.len() != 0 || m.stats.cancelled.Load() != 2 {
		t.Fatalf("%d tasks live, %d cancelled; want 0 and 2", m.table.len(), m.stats.cancelled.Load())
	}
}

// Retry: a failed task runs again with fresh attempts, its errors kept; a
// live one is not retried.
func TestRetryOfAFailedTask(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	submitKind(t, m, testUUID, message.Options{MaxAttempts: 1})
	m.takeResult(failedResult(sent.all()[0], "boom", false))
	m.wg.Wait()
	if reply := m.retry(message.RetryRequest{UUID: testUUID}); reply.Error != "" || len(reply.Retried) != 1 {
		t.Fatalf("retry: %+v", reply)
	}
	m.wg.Wait()
	tasks := sent.all()
	if len(tasks) != 2 || tasks[1].Attempt != 2 {
		t.Fatalf("sendings %+v; want the task sent again as attempt 2: its attempts go on counting", tasks)
	}
	if rec := st.recs[testUUID]; rec.MaxAttempts != 1+m.policy.maxAttempts {
		t.Fatalf("max attempts %d after a retry, want %d more", rec.MaxAttempts, m.policy.maxAttempts)
	}
	if reply := m.retry(message.RetryRequest{UUID: testUUID}); !strings.Contains(reply.Error, "nothing to retry") {
		t.Fatalf("retry of a running task: %+v", reply)
	}
	m.takeResult(resultOf(tasks[1]))
	m.wg.Wait()
	rec := st.recs[testUUID]
	if rec.State != taskstore.Done || len(rec.Errors) != 1 || m.stats.rerun.Load() != 1 {
		t.Fatalf("record %+v; want done, the first run's error kept", rec)
	}
}

// get tells a live task's state from the table, a final one's from its
// record.
func TestGet(t *testing.T) {
	m, sent, _ := lifeMaster(t, nil)
	if ti := m.get(testUUID); !strings.Contains(ti.Error, "no task") {
		t.Fatalf("get of an unknown task: %+v", ti)
	}
	submitKind(t, m, testUUID, message.Options{Priority: 3})
	if ti := m.get(testUUID); ti.State != message.StateRunning || ti.Attempts != 1 || ti.Priority != 3 || ti.Started == nil {
		t.Fatalf("get of a running task: %+v", ti)
	}
	m.takeResult(resultOf(sent.all()[0]))
	m.wg.Wait()
	if ti := m.get(testUUID); ti.State != message.StateDone || ti.Result == nil || ti.Finished == nil || string(ti.Payload) != "5" {
		t.Fatalf("get of a done task: %+v", ti)
	}
}

// A cancel whose write fails leaves a delayed task waiting for its time:
// not run early by the next rescue.
func TestFailedCancelLeavesADelayedTaskWaiting(t *testing.T) {
	var failComplete atomic.Bool
	m, sent, st := lifeMaster(t, nil)
	m.records.(*fakeRecords).complete = func(r taskstore.Record) error {
		if failComplete.Load() {
			return errors.New("etcd down")
		}
		return st.put(r)
	}
	submitKind(t, m, testUUID, message.Options{Delay: message.Duration(time.Hour)})
	failComplete.Store(true)
	if ti := m.cancel(testUUID); !ti.Temporary {
		t.Fatalf("cancel with etcd down: %+v, want a temporary error", ti)
	}
	m.rescue(time.Now())
	m.dispatch()
	m.wg.Wait()
	if n := len(sent.all()); n != 0 {
		t.Fatalf("a task delayed by an hour sent %d times after a failed cancel", n)
	}
	if task := m.table.lookup(testUUID); task == nil || task.timer == 0 {
		t.Fatal("the task is not waiting for its time")
	}
}

// A retry of many reads each task again: a snapshot that went stale (the
// task retried and failed again meanwhile) does not send an attempt
// number twice.
func TestRetryOfManyReadsEachTaskAgain(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	submitKind(t, m, testUUID, message.Options{MaxAttempts: 1})
	m.takeResult(failedResult(sent.all()[0], "boom", false))
	m.wg.Wait()
	stale := st.recs[testUUID]
	m.records.(*fakeRecords).load = func() ([]taskstore.Record, int64, error) { return []taskstore.Record{stale}, 1, nil }
	if reply := m.retry(message.RetryRequest{UUID: testUUID}); reply.Error != "" {
		t.Fatalf("retry: %+v", reply)
	}
	m.wg.Wait()
	tasks := sent.all()
	m.takeResult(failedResult(tasks[len(tasks)-1], "boom 2", true))
	m.wg.Wait()
	if reply := m.retry(message.RetryRequest{State: message.StateFailed}); reply.Error != "" || len(reply.Retried) != 1 {
		t.Fatalf("retry of the failed: %+v", reply)
	}
	m.wg.Wait()
	tasks = sent.all()
	var attempts []int64
	for _, task := range tasks {
		attempts = append(attempts, task.Attempt)
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Fatalf("attempts sent %v, want [1 2 3]", attempts)
	}
}
