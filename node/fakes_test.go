package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/schedule"
	"github.com/meshpool/meshpool/taskstore"
)

// Fakes for the master's unit tests (master_test.go): its task records and
// its sendings, with function fields, as litestream tests its DB against
// mock.ReplicaClient.

// fakeLead is a leadership that holds until lost is set.
type fakeLead struct{ lost atomic.Bool }

func (l *fakeLead) Valid() bool { return !l.lost.Load() }

// fakeRecords is a taskRecords whose methods call its fields; a nil field
// succeeds (a write) or finds nothing (a read).
type fakeRecords struct {
	load     func() ([]taskstore.Record, int64, error)
	get      func(uuid string) (taskstore.Record, bool, error)
	put      func(taskstore.Record) error
	complete func(taskstore.Record) error
	// putManys counts the calls of PutMany (each of whose records goes
	// through put).
	putManys atomic.Int64
}

func (f *fakeRecords) Load(context.Context) ([]taskstore.Record, int64, error) {
	if f.load == nil {
		return nil, 1, nil
	}
	return f.load()
}

func (f *fakeRecords) Get(_ context.Context, uuid string) (taskstore.Record, bool, error) {
	if f.get == nil {
		return taskstore.Record{}, false, nil
	}
	return f.get(uuid)
}

func (f *fakeRecords) Put(_ context.Context, r taskstore.Record) error {
	if f.put == nil {
		return nil
	}
	return f.put(r)
}

func (f *fakeRecords) PutMany(ctx context.Context, recs []taskstore.Record) []error {
	f.putManys.Add(1)
	errs := make([]error, len(recs))
	for i, r := range recs {
		errs[i] = f.Put(ctx, r)
	}
	return errs
}

func (f *fakeRecords) Schedules(context.Context) ([]schedule.Schedule, error) { return nil, nil }

func (f *fakeRecords) PutValue(context.Context, string, string) error { return nil }

func (f *fakeRecords) Delete(context.Context, string) error { return nil }

func (f *fakeRecords) Complete(_ context.Context, r taskstore.Record) error {
	if f.complete == nil {
		return nil
	}
	return f.complete(r)
}

// sendings records the tasks a master sends, each taken at once.
type sendings struct {
	mu    sync.Mutex
	tasks []message.Task
}

func (s *sendings) send(_ context.Context, task message.Task, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks = append(s.tasks, task)
	return nil
}

func (s *sendings) all() []message.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]message.Task(nil), s.tasks...)
}

// testMaster is a master of term 7 that leads until told otherwise, on fake
// records that take every write and a send that drops every task; change
// sets other fields. Its work is waited for when the test ends.
func testMaster(t testing.TB, change func(*masterConfig)) *master {
	cfg := masterConfig{
		id: "m-00000000", lead: &fakeLead{}, term: 7, records: &fakeRecords{},
		send:       func(context.Context, message.Task, bool) error { return nil },
		ackTimeout: time.Second, taskTimeout: 30 * time.Second, retention: time.Minute, failedRetention: time.Hour, doneMax: 100,
		policy: lifePolicy{maxAttempts: 1, timeout: 30 * time.Second, backoff: 10 * time.Millisecond, backoffMax: 100 * time.Millisecond},
		log:    slog.New(slog.DiscardHandler), stats: &masterStats{},
	}
	if change != nil {
		change(&cfg)
	}
	m := newMaster(t.Context(), cfg)
	t.Cleanup(m.wg.Wait)
	return m
}

// resultOf is the right result of task from its worker.
func resultOf(task message.Task) message.Result {
	now := message.NewTimestamp(time.Now())
	return message.Result{UUID: task.UUID, Executor: task.Executor, Kind: task.Kind, Number: task.Number, Result: message.TripleResult(task.Number),
		Start: now, Finish: now, Term: task.Term, Attempt: task.Attempt}
}

const testUUID = "00000000-0000-4000-8000-000000000001"

// submitted submits a durable task of number n and fails unless it is accepted.
func submitted(t *testing.T, m *master, n int64) {
	t.Helper()
	var reply message.SubmitReply
	m.submit(demoTask(testUUID, n), "", func(r message.SubmitReply) { reply = r })
	if !reply.Accepted {
		t.Fatalf("submission not accepted: %+v", reply)
	}
}

// demoTask is a durable submission of the demo kind, as DecodeSubmit
// returns it.
func demoTask(uuid string, n int64) message.Submit {
	return message.Submit{UUID: uuid, Kind: message.KindTriple, Payload: json.RawMessage(strconv.FormatInt(n, 10)), Number: n}
}

// workers are members with the given IDs that run the demo kind without
// a bound on their slots, as nodes from before kinds registered.
func workers(ids ...string) []registry.Record {
	recs := make([]registry.Record, len(ids))
	for i, id := range ids {
		recs[i] = registry.Record{ID: id}
	}
	return recs
}

// testWorkerConfig runs the demo kind in workTime, in 64 slots.
func testWorkerConfig(workTime WorkTime) workerConfig {
	mux := meshpool.NewMux()
	mux.Handle(message.KindTriple, Triple(workTime))
	return workerConfig{handlers: mux, slots: 64, timeout: time.Minute, maxResult: 1 << 20}
}
