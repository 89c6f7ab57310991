package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/message"
)

// termRig is one worker on a real NATS server, checking terms in a real
// etcd, with no election watch: it knows only what it reads from etcd, as
// a worker does when a new master's first task beats the watch.
type termRig struct {
	t       *testing.T
	cli     *clientv3.Client
	conn    *nats.Conn
	w       *worker
	reads   atomic.Int64 // the worker's reads of the master's term in etcd
	mu      sync.Mutex
	results map[string]message.Result
}

const termRigPrefix = "/worker-test"

func newTermRig(t *testing.T) *termRig {
	t.Helper()
	return newTermRigWith(t, testWorkerConfig(WorkTime{Min: time.Millisecond, Max: 5 * time.Millisecond}))
}

// newTermRigWith is newTermRig with a worker of cfg.
func newTermRigWith(t *testing.T, cfg workerConfig) *termRig {
	t.Helper()
	_, cli := etcdtest.New(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	conn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	r := &termRig{t: t, cli: cli, conn: conn, results: map[string]message.Result{}}
	if _, err := conn.Subscribe(message.SubjectResults, func(msg *nats.Msg) {
		if res, err := message.DecodeResult(msg.Data); err == nil {
			r.mu.Lock()
			r.results[res.UUID] = res
			r.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	r.w = newWorker("w-00000001", conn, cfg,
		func(ctx context.Context) (int64, error) {
			r.reads.Add(1)
			return etcdMasterTerm(cli, termRigPrefix)(ctx)
		}, 2*time.Second, slog.New(slog.DiscardHandler))
	if err := r.w.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.w.stop(); r.w.finish(5 * time.Second) })
	return r
}

// campaign makes a candidate in the rig's election and waits until it
// leads; it returns its term and a func that resigns.
func (r *termRig) campaign() (int64, func()) {
	r.t.Helper()
	s, err := concurrency.NewSession(r.cli, concurrency.WithTTL(5))
	if err != nil {
		r.t.Fatal(err)
	}
	el := concurrency.NewElection(s, keyspace.Election(termRigPrefix))
	ctx, cancel := context.WithTimeout(r.t.Context(), 10*time.Second)
	defer cancel()
	if err := el.Campaign(ctx, "master"); err != nil {
		r.t.Fatal(err)
	}
	resign := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = el.Resign(ctx)
		_ = s.Close()
	}
	r.t.Cleanup(resign)
	return el.Rev(), resign
}

// send requests a task of this term and number and returns the ack.
func (r *termRig) send(term, number int64) (message.Task, message.Ack) {
	r.t.Helper()
	task := message.Task{UUID: uuid.NewString(), Executor: r.w.id, Number: number, Term: term}
	msg, err := r.conn.Request(message.TaskSubject(r.w.id), task.AppendJSON(nil), 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	ack, err := message.DecodeAck(msg.Data)
	if err != nil {
		r.t.Fatal(err)
	}
	return task, ack
}

func (r *termRig) waitResult(id string) message.Result {
	r.t.Helper()
	var res message.Result
	testutil.Eventually(r.t, 10*time.Second, "a result for "+id, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		res, ok = r.results[id]
		return ok
	})
	return res
}

// A task cannot raise a worker's term: a newer term is checked in etcd, a
// forged one refused and counted, and a real new master's task is accepted
// before the worker has heard of the new master any other way.
func TestWorkerChecksANewerTermInEtcd(t *testing.T) {
	r := newTermRig(t)
	term, resign := r.campaign()

	task, ack := r.send(term, 4)
	if !ack.Accepted || ack.Term != term {
		t.Fatalf("the current master's first task: ack %+v, want accepted at term %d", ack, term)
	}
	if res := r.waitResult(task.UUID); string(res.Result) != "12" {
		t.Fatalf("result %+v", res)
	}

	for _, forged := range []int64{1 << 62, term + 1} {
		_, ack = r.send(forged, 4)
		if ack.Accepted || !strings.Contains(ack.Reason, "is not the current master's") || ack.Term != term {
			t.Fatalf("forged term %d: ack %+v, want refused, term still %d", forged, ack, term)
		}
	}
	if got := r.w.refused.Load(); got != 2 {
		t.Fatalf("refused %d, want 2", got)
	}
	if got := r.w.term.Load(); got != term {
		t.Fatalf("worker term %d after forged tasks, want %d", got, term)
	}

	task, ack = r.send(term, 5)
	if !ack.Accepted {
		t.Fatalf("a real task after forged ones: ack %+v", ack)
	}
	r.waitResult(task.UUID)

	// A stream of forged terms costs etcd a read per termCheckInterval,
	// not one each.
	reads, start := r.reads.Load(), time.Now()
	for i := range int64(200) {
		if _, ack = r.send(1<<40+i, 4); ack.Accepted {
			t.Fatalf("forged term %d accepted", 1<<40+i)
		}
	}
	if got, most := r.reads.Load()-reads, int64(time.Since(start)/termCheckInterval)+1; got > most {
		t.Fatalf("200 forged terms cost %d etcd reads, want at most %d", got, most)
	}

	// A new master: its first task is the worker's first news of it. Right
	// after forged terms, the worker reads etcd again within
	// termCheckInterval.
	resign()
	next, resign := r.campaign()
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		if task, ack = r.send(next, 6); !ack.Accepted {
			return fmt.Errorf("the new master's first task: ack %+v, want accepted at term %d", ack, next)
		}
		return nil
	})
	r.waitResult(task.UUID)
	// Or at once, forged terms or not, when the election shows the master.
	if _, ack = r.send(1<<50, 4); ack.Accepted {
		t.Fatal("forged term accepted")
	}
	resign()
	third, _ := r.campaign()
	r.w.views.Add(1) // what followMaster does when the election shows a new master
	if task, ack = r.send(third, 8); !ack.Accepted || ack.Term != third {
		t.Fatalf("the third master's first task, the election showing it: ack %+v, want accepted at term %d", ack, third)
	}
	r.waitResult(task.UUID)
	// A worker left on a term above etcd's master (an etcd replaced by an
	// empty one, seen late) takes etcd's answer, lower as it is.
	r.w.term.Store(1 << 40)
	r.w.views.Add(1)
	if task, ack = r.send(third, 9); !ack.Accepted || ack.Term != third {
		t.Fatalf("the master's task to a worker on a higher term: ack %+v, want accepted at term %d", ack, third)
	}
	r.waitResult(task.UUID)
	term = next // the deposed master below
	if _, ack = r.send(term, 7); ack.Accepted || !strings.Contains(ack.Reason, "stale term") {
		t.Fatalf("the deposed master's task: ack %+v, want refused as stale", ack)
	}
}

// A worker checks a task's number as the master checks a submission's, so
// a task sent straight to tasks.<id> cannot make it publish an overflow.
func TestWorkerRefusesANumberOutOfRange(t *testing.T) {
	r := newTermRig(t)
	term, _ := r.campaign()
	for _, n := range []int64{message.MaxNumber + 1, -message.MaxNumber - 1, 1 << 62} {
		_, ack := r.send(term, n)
		if ack.Accepted || !strings.Contains(ack.Reason, "out of range") {
			t.Fatalf("number %d: ack %+v, want refused as out of range", n, ack)
		}
	}
	if got := r.w.refused.Load(); got != 3 {
		t.Fatalf("refused %d, want 3", got)
	}
	task, ack := r.send(term, message.MaxNumber)
	if !ack.Accepted {
		t.Fatalf("the largest number: ack %+v", ack)
	}
	if res := r.waitResult(task.UUID); string(res.Result) != string(message.TripleResult(message.MaxNumber)) {
		t.Fatalf("result %+v", res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.results) != 1 {
		t.Fatalf("%d results published, want only the valid task's", len(r.results))
	}
}

// A task sent with a known uuid and another number (anyone may, in open
// mode) is another task: it does not stand for the real one, which the
// worker still runs and answers.
func TestTaskOfAKnownUUIDAndAnotherNumberRunsOnItsOwn(t *testing.T) {
	r := newTermRig(t)
	term, _ := r.campaign()
	got := make(chan message.Result, 16)
	sub, err := r.conn.Subscribe(message.SubjectResults, func(msg *nats.Msg) {
		if res, err := message.DecodeResult(msg.Data); err == nil {
			got <- res
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	id := uuid.NewString()
	for _, number := range []int64{4, 5} { // the forged one first
		task := message.Task{UUID: id, Executor: r.w.id, Number: number, Term: term, Attempt: 1}
		msg, err := r.conn.Request(message.TaskSubject(r.w.id), task.AppendJSON(nil), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := message.DecodeAck(msg.Data); err != nil || !ack.Accepted {
			t.Fatalf("number %d: ack %+v, %v", number, ack, err)
		}
	}
	numbers := map[int64]bool{}
	timeout := time.After(10 * time.Second)
	for len(numbers) < 2 {
		select {
		case res := <-got:
			numbers[res.Number] = string(res.Result) == string(message.TripleResult(res.Number))
		case <-timeout:
			t.Fatalf("results for numbers %v, want 4 and 5", numbers)
		}
	}
	if !numbers[5] {
		t.Fatal("the real task's result is wrong")
	}
	// Sent again, the real task is answered from the worker's memory.
	task := message.Task{UUID: id, Executor: r.w.id, Number: 5, Term: term, Attempt: 2}
	if _, err := r.conn.Request(message.TaskSubject(r.w.id), task.AppendJSON(nil), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.Number != 5 || res.Attempt != 2 {
			t.Fatalf("answer to the real task sent again: %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the real task sent again")
	}
}
