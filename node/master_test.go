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

// The master's state machine, without etcd or NATS (fakes_test.go).

// placedOnA is a master with workers w-a and w-b, w-b the busier, and one
// durable task of number 5 placed on w-a; it keeps what the master sends
// and the executor of every record it writes.
func placedOnA(t *testing.T) (*master, *sendings, *[]string) {
	sent, puts := &sendings{}, &[]string{}
	m := testMaster(t, func(c *masterConfig) {
		c.send = sent.send
		c.records = &fakeRecords{put: func(r taskstore.Record) error { *puts = append(*puts, r.Executor); return nil }}
	})
	m.table.setWorkers(workers("w-a", "w-b"))
	m.table.book.load["w-b"] = 5 // busier: the task goes to w-a first
	submitted(t, m, 5)
	return m, sent, puts
}

// A result that comes while its task is being placed (the worker answers
// before its ack reaches the master) is recorded once, by the placement
// when it ends.
func TestResultDuringPlacementIsRecordedOnce(t *testing.T) {
	var completes atomic.Int32
	sending, proceed := make(chan message.Task), make(chan struct{})
	m := testMaster(t, func(c *masterConfig) {
		c.records = &fakeRecords{complete: func(taskstore.Record) error { completes.Add(1); return nil }}
		c.send = func(_ context.Context, task message.Task, _ bool) error {
			sending <- task
			<-proceed
			return nil
		}
	})
	m.table.setWorkers(workers("w-a"))
	submittedc := make(chan struct{})
	go func() {
		defer close(submittedc)
		submitted(t, m, 5)
	}()
	task := <-sending
	m.takeResult(resultOf(task))
	m.takeResult(resultOf(task)) // and again: a duplicate
	close(proceed)
	<-submittedc
	m.wg.Wait()
	if n := completes.Load(); n != 1 {
		t.Fatalf("result written %d times, want once", n)
	}
	if n, dup := m.stats.completed.Load(), m.stats.dupResults.Load(); n != 1 || dup != 1 {
		t.Fatalf("completed %d, duplicate results %d; want 1 and 1", n, dup)
	}
	if n := m.table.len(); n != 0 {
		t.Fatalf("%d tasks still pending after their result was recorded", n)
	}
}

// A task whose worker does not answer within the task timeout has lost
// that attempt: it is recorded retrying, with the error, then placed again
// as attempt 2 when its backoff ends; the first worker's late answer is
// still its result.
func TestTimedOutTaskIsRetried(t *testing.T) {
	m, sent, puts := placedOnA(t)
	m.policy.maxAttempts = 3
	m.table.tasks[testUUID].rec.MaxAttempts = 3
	m.rescue(time.Now().Add(m.taskTimeout + ResultSlack(m.taskTimeout)))
	m.wg.Wait()
	task := m.table.tasks[testUUID]
	if task.rec.State != taskstore.Retrying || len(task.rec.Errors) != 1 || !strings.Contains(task.rec.Errors[0].Error, "no result within the task timeout") {
		t.Fatalf("after the timeout: %s with errors %+v; want retrying with the timeout's error", task.rec.State, task.rec.Errors)
	}
	if fmt.Sprint(*puts) != "[w-a w-a]" {
		t.Fatalf("records written with executors %v, want [w-a w-a]: accepted, then retrying", *puts)
	}
	m.table.due(task.rec.NotBefore)
	m.dispatch()
	m.wg.Wait()
	tasks := sent.all()
	if len(tasks) != 2 || tasks[0].Executor != "w-a" || tasks[1].Attempt != 2 {
		t.Fatalf("sendings %+v; want w-a as attempt 1, then attempt 2", tasks)
	}
	m.takeResult(resultOf(tasks[0]))
	m.wg.Wait()
	if late, done := m.stats.lateResults.Load(), m.stats.completed.Load(); late != 1 || done != 1 {
		t.Fatalf("late results %d, completed %d; want the timed-out worker's result recorded, as late", late, done)
	}
}

// A master whose write is fenced (a newer term exists) is deposed: it says
// nothing to the submitter, whom the real master answers, and counts no
// failure. Any other failed write is answered as a temporary error.
func TestFencedWriteLeavesTheMasterSilent(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		answered bool
	}{
		{"fenced", fmt.Errorf("txn: %w", taskstore.ErrFenced), false},
		{"etcd down", errors.New("context deadline exceeded"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sent sendings
			m := testMaster(t, func(c *masterConfig) {
				c.send = sent.send
				c.records = &fakeRecords{put: func(taskstore.Record) error { return tt.err }}
			})
			m.table.setWorkers(workers("w-a"))
			var answers []message.SubmitReply
			m.submit(demoTask(testUUID, 5), "", func(r message.SubmitReply) { answers = append(answers, r) })
			m.wg.Wait()
			if got := len(answers) > 0; got != tt.answered {
				t.Fatalf("answered %v (%+v), want %v", got, answers, tt.answered)
			}
			if tt.answered && (answers[0].Accepted || !answers[0].Temporary) {
				t.Fatalf("answer %+v, want a temporary refusal", answers[0])
			}
			if n := m.stats.recordFailures.Load(); (n == 1) != tt.answered {
				t.Fatalf("%d record failures counted", n)
			}
			if len(sent.all()) != 0 || m.table.len() != 0 {
				t.Fatalf("a task not recorded was kept (%d) or sent (%d)", m.table.len(), len(sent.all()))
			}
		})
	}
}

// A fenced write of a result is silent too: not a failure, and the result
// is kept, not lost, for as long as this master runs.
func TestFencedResultWriteIsSilent(t *testing.T) {
	var sent sendings
	m := testMaster(t, func(c *masterConfig) {
		c.send = sent.send
		c.records = &fakeRecords{complete: func(taskstore.Record) error { return taskstore.ErrFenced }}
	})
	m.table.setWorkers(workers("w-a"))
	submitted(t, m, 5)
	m.takeResult(resultOf(sent.all()[0]))
	m.wg.Wait()
	if f, c := m.stats.recordFailures.Load(), m.stats.completed.Load(); f != 0 || c != 0 {
		t.Fatalf("record failures %d, completed %d; want none", f, c)
	}
	if m.table.len() != 1 {
		t.Fatal("the task was dropped")
	}
}

// When a worker leaves, the attempt it took is over: its task is retried
// (recorded first), or failed when that was its last attempt.
func TestLeaversTasksAreRetried(t *testing.T) {
	for _, attempts := range []int{1, 2} {
		m, sent, puts := placedOnA(t)
		m.table.tasks[testUUID].rec.MaxAttempts = attempts
		mem := registry.Membership{Members: []registry.Record{{ID: "m-00000000"}, {ID: "w-b"}}}
		m.setWorkers(mem)
		m.reassign(mem)
		m.wg.Wait()
		if attempts == 1 {
			if m.table.len() != 0 || m.stats.errResults.Load() != 1 {
				t.Fatalf("its last attempt lost: %d tasks live, %d failed; want it failed", m.table.len(), m.stats.errResults.Load())
			}
			continue
		}
		task := m.table.tasks[testUUID]
		if task.rec.State != taskstore.Retrying || !strings.Contains(task.rec.Errors[0].Error, "left the cluster") {
			t.Fatalf("%s, errors %+v; want retrying after its worker left", task.rec.State, task.rec.Errors)
		}
		m.table.due(task.rec.NotBefore)
		m.dispatch()
		m.wg.Wait()
		tasks := sent.all()
		if len(tasks) != 2 || tasks[1].Executor != "w-b" || tasks[1].Attempt != 2 {
			t.Fatalf("sendings %+v; want the task sent again, to w-b, as attempt 2", tasks)
		}
		if fmt.Sprint(*puts) != "[w-a w-a w-b]" {
			t.Fatalf("records written with executors %v, want [w-a w-a w-b]", *puts)
		}
	}
}

// A task whose worker leaves before it took the task (its sending failed)
// goes to another worker as the same attempt.
func TestTaskNeverTakenMovesAsTheSameAttempt(t *testing.T) {
	var sent sendings
	m := testMaster(t, func(c *masterConfig) {
		c.send = func(ctx context.Context, task message.Task, ephemeral bool) error {
			if task.Executor == "w-a" {
				return errors.New("refused: draining")
			}
			return sent.send(ctx, task, ephemeral)
		}
	})
	m.table.setWorkers(workers("w-a"))
	submitted(t, m, 5)
	mem := registry.Membership{Members: []registry.Record{{ID: "m-00000000"}, {ID: "w-b"}}}
	m.setWorkers(mem)
	m.reassign(mem)
	m.wg.Wait()
	if tasks := sent.all(); len(tasks) != 1 || tasks[0].Executor != "w-b" || tasks[0].Attempt != 1 {
		t.Fatalf("sendings taken %+v; want w-b's, as attempt 1", tasks)
	}
}

// A new master resumes each running task on its own worker when that one
// is still a member (a redelivery it answers without working the task
// again), as the same attempt; one whose worker is gone has lost its
// attempt and is retried.
func TestResumedTasksStayWithTheirWorker(t *testing.T) {
	var sent sendings
	var puts atomic.Int32
	id := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	recs := []taskstore.Record{
		{UUID: id(1), Kind: message.KindTriple, Payload: json.RawMessage("1"), Number: 1, Executor: "w-a", Term: 3, Attempts: 1, State: taskstore.Running, MaxAttempts: 3},
		{UUID: id(2), Kind: message.KindTriple, Payload: json.RawMessage("2"), Number: 2, Executor: "w-gone", Term: 3, Attempts: 1, State: taskstore.Running, MaxAttempts: 3},
	}
	m := testMaster(t, func(c *masterConfig) {
		c.send = sent.send
		c.records = &fakeRecords{load: func() ([]taskstore.Record, int64, error) { return recs, 9, nil },
			put: func(taskstore.Record) error { puts.Add(1); return nil }}
	})
	if err := m.loadTasks(t.Context()); err != nil {
		t.Fatal(err)
	}
	mem := registry.Membership{Members: []registry.Record{{ID: "m-00000000"}, {ID: "w-a"}, {ID: "w-b"}}}
	m.setWorkers(mem)
	m.resume(mem)
	m.wg.Wait()
	tasks := sent.all()
	if len(tasks) != 1 || tasks[0].UUID != id(1) || tasks[0].Executor != "w-a" || tasks[0].Term != 7 || tasks[0].Attempt != 1 {
		t.Fatalf("sent %+v; want the first on its own w-a as attempt 1, under term 7", tasks)
	}
	if st := m.table.tasks[id(2)].rec.State; st != taskstore.Retrying {
		t.Fatalf("the task whose worker is gone is %s, want retrying", st)
	}
	// Both change term, so both are written: the term is in the record.
	if n := puts.Load(); n != 2 {
		t.Fatalf("%d records written, want 2", n)
	}
}

// Placements go to the least loaded worker, at random among equals.
func TestPickTakesTheLeastLoadedAtRandomAmongEquals(t *testing.T) {
	b := newLoadBook()
	b.workers = workers("w-a", "w-b", "w-c", "w-d")
	b.load["w-a"], b.load["w-d"] = 2, 1
	counts := map[string]int{}
	const picks = 3000
	for range picks {
		counts[b.pick(message.KindTriple, "", nil)]++
	}
	if counts["w-a"] != 0 || counts["w-d"] != 0 {
		t.Fatalf("picked busier workers: %v", counts)
	}
	for _, w := range []string{"w-b", "w-c"} {
		if counts[w] < picks/3 { // each should get about half; a third is 0 in 10^70 by chance
			t.Fatalf("ties not broken at random: %v", counts)
		}
	}
	for _, tt := range []struct {
		exclude string
		tried   []string
		want    string
	}{
		{"", []string{"w-b", "w-c"}, "w-d"},
		{"w-d", []string{"w-b", "w-c"}, "w-a"},
		{"", []string{"w-a", "w-b", "w-c", "w-d"}, ""},
	} {
		if got := b.pick(message.KindTriple, tt.exclude, tt.tried); got != tt.want {
			t.Errorf("pick(%q, %v) = %q, want %q", tt.exclude, tt.tried, got, tt.want)
		}
	}
	b.workers = workers("w-a")
	if got := b.pick(message.KindTriple, "w-a", nil); got != "w-a" {
		t.Errorf("the only worker excluded: pick = %q, want it anyway", got)
	}
}

// A worker that does not take a task is passed for the next; when none
// takes it, it waits for its back-off.
func TestRefusedTaskGoesToTheNextWorker(t *testing.T) {
	var sent sendings
	refuse := map[string]bool{"w-a": true}
	var mu sync.Mutex
	m := testMaster(t, func(c *masterConfig) {
		c.send = func(ctx context.Context, task message.Task, ephemeral bool) error {
			mu.Lock()
			no := refuse[task.Executor]
			mu.Unlock()
			if no {
				return errors.New("refused: draining")
			}
			return sent.send(ctx, task, ephemeral)
		}
	})
	m.table.setWorkers(workers("w-a", "w-b", "w-c"))
	m.table.book.load["w-b"], m.table.book.load["w-c"] = 1, 2
	submitted(t, m, 5)
	if tasks := sent.all(); len(tasks) != 1 || tasks[0].Executor != "w-b" || tasks[0].Attempt != 1 {
		t.Fatalf("sendings taken %+v; want w-b's, as attempt 1: w-a refused it, so never started it", tasks)
	}

	mu.Lock()
	refuse["w-b"], refuse["w-c"] = true, true
	mu.Unlock()
	m.submit(demoTask("00000000-0000-4000-8000-000000000002", 6), "", func(message.SubmitReply) {})
	m.wg.Wait()
	task := m.table.tasks["00000000-0000-4000-8000-000000000002"]
	if task.failures != 1 || !task.sent.IsZero() || task.retryAt.IsZero() {
		t.Fatalf("a task no worker took: failures %d, sent %v, retry at %v; want 1, unsent, backed off", task.failures, task.sent, task.retryAt)
	}
}

// A master whose leadership is lost writes no result: the next master
// resumes the task.
func TestNoResultWrittenOnceTheLeadershipIsLost(t *testing.T) {
	var sent sendings
	var completes atomic.Int32
	lead := &fakeLead{}
	m := testMaster(t, func(c *masterConfig) {
		c.lead, c.send = lead, sent.send
		c.records = &fakeRecords{complete: func(taskstore.Record) error { completes.Add(1); return nil }}
	})
	m.table.setWorkers(workers("w-a"))
	submitted(t, m, 5)
	lead.lost.Store(true)
	m.takeResult(resultOf(sent.all()[0]))
	m.wg.Wait()
	if n, c, f := completes.Load(), m.stats.completed.Load(), m.stats.recordFailures.Load(); n != 0 || c != 0 || f != 0 {
		t.Fatalf("writes %d, completed %d, failures %d; want none", n, c, f)
	}
}
