package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// What each submitter holds, with fakes for the master's records and
// sendings (fakes_test.go): counted as tasks are accepted, uncounted once
// as each reaches a final state, restored by a new master, and bound.

func uuidN(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// submitAs submits a durable demo task of uuid id from submitter and
// returns the answer.
func submitAs(t *testing.T, m *master, submitter, id string, opts message.Options) message.SubmitReply {
	t.Helper()
	var reply message.SubmitReply
	sub := demoTask(id, 5)
	sub.Options = opts
	m.submit(sub, submitter, func(r message.SubmitReply) { reply = r })
	m.wg.Wait()
	return reply
}

// heldBy is what the master counts for each submitter named.
func heldBy(m *master, submitters ...string) string {
	var b strings.Builder
	for _, s := range submitters {
		fmt.Fprintf(&b, "%q:%d ", s, m.table.submitters.held(s))
	}
	return strings.TrimSpace(b.String())
}

// Each accepted task counts for its submitter until its record is final:
// done, failed (not a retry on the way), cancelled; each once, whatever
// comes after (a duplicate result, a second cancel). A task whose record
// could not be written never counted; a retry counts again.
func TestSubmitterHoldsItsTasksUntilTheyAreFinal(t *testing.T) {
	m, sent, st := lifeMaster(t, nil)
	who := []string{"alice", "bob", ""}
	for i, s := range []string{"alice", "alice", "bob", ""} {
		opts := message.Options{MaxAttempts: 2}
		if i == 1 {
			opts.Delay = message.Duration(time.Hour) // pending, not running
		}
		if r := submitAs(t, m, s, uuidN(i+1), opts); !r.Accepted {
			t.Fatalf("submission %d not accepted: %+v", i+1, r)
		}
	}
	if got := heldBy(m, who...); got != `"alice":2 "bob":1 "":1` {
		t.Fatalf("held after four submissions: %s", got)
	}
	// Every record names its submitter.
	if s := st.recs[uuidN(1)].Submitter; s != "alice" {
		t.Fatalf("record of alice's task names %q", s)
	}
	if s := st.recs[uuidN(4)].Submitter; s != "" {
		t.Fatalf("record of an anonymous task names %q", s)
	}
	// A duplicate submission, by whoever, counts nothing.
	if r := submitAs(t, m, "bob", uuidN(1), message.Options{MaxAttempts: 2}); !r.Duplicate {
		t.Fatalf("re-submission answered %+v, want a duplicate", r)
	}
	taskOf := func(id string) message.Task {
		t.Helper()
		tasks := sent.all()
		for i := len(tasks) - 1; i >= 0; i-- {
			if tasks[i].UUID == id {
				return tasks[i]
			}
		}
		t.Fatalf("task %s was never sent", id)
		return message.Task{}
	}

	// Done, and its result again: one less.
	res := resultOf(taskOf(uuidN(1)))
	m.takeResult(res)
	m.wg.Wait()
	m.takeResult(res)
	m.wg.Wait()
	if got := heldBy(m, who...); got != `"alice":1 "bob":1 "":1` {
		t.Fatalf("held after alice's task is done: %s", got)
	}
	// Cancelled, twice: one less.
	m.cancel(uuidN(2))
	m.cancel(uuidN(2))
	m.wg.Wait()
	if got := heldBy(m, who...); got != `"alice":0 "bob":1 "":1` {
		t.Fatalf("held after alice's other task is cancelled: %s", got)
	}
	// Retrying is not final; failed is.
	m.takeResult(failedResult(taskOf(uuidN(3)), "boom", false))
	m.wg.Wait()
	if got := heldBy(m, "bob"); got != `"bob":1` {
		t.Fatalf("held while bob's task is retrying: %s", got)
	}
	retryDue(t, m, uuidN(3))
	m.takeResult(failedResult(taskOf(uuidN(3)), "boom", false))
	m.wg.Wait()
	if got := heldBy(m, "bob"); got != `"bob":0` {
		t.Fatalf("held after bob's task failed: %s", got)
	}
	// A retry makes it bob's again.
	if reply := m.retry(message.RetryRequest{UUID: uuidN(3)}); reply.Error != "" {
		t.Fatalf("retry: %+v", reply)
	}
	m.wg.Wait()
	if got := heldBy(m, "bob"); got != `"bob":1` {
		t.Fatalf("held after bob's task is retried: %s", got)
	}
	m.takeResult(resultOf(taskOf(uuidN(3))))
	m.takeResult(resultOf(taskOf(uuidN(4))))
	m.wg.Wait()

	// A task whose record cannot be written is not accepted, and counts
	// for no one.
	m.records.(*fakeRecords).put = func(taskstore.Record) error { return errors.New("etcd down") }
	if r := submitAs(t, m, "carol", uuidN(9), message.Options{}); r.Accepted || !r.Temporary {
		t.Fatalf("submission with etcd down answered %+v", r)
	}
	if got := heldBy(m, append(who, "carol")...); got != `"alice":0 "bob":0 "":0 "carol":0` {
		t.Fatalf("held at the end: %s", got)
	}
	if n := len(m.table.submitters.by); n != 0 {
		t.Fatalf("%d submitters remembered with nothing held", n)
	}
}

// A submitter that holds --max-pending-per-submitter tasks is refused, as
// temporary, until one is final; the others are not, nor is the master's
// own work, nor anonymous submissions; a known uuid is still answered.
func TestSubmitterBound(t *testing.T) {
	m, sent, _ := lifeMaster(t, func(c *masterConfig) { c.limits.perSubmitter = 2 })
	for i := 1; i <= 2; i++ {
		if r := submitAs(t, m, "flood", uuidN(i), message.Options{}); !r.Accepted {
			t.Fatalf("submission %d not accepted: %+v", i, r)
		}
	}
	r := submitAs(t, m, "flood", uuidN(3), message.Options{})
	want := "busy: submitter flood holds 2 unfinished tasks (--max-pending-per-submitter 2); try again later"
	if r.Accepted || !r.Temporary || r.Error != want {
		t.Fatalf("third submission answered %+v, want the temporary refusal %q", r, want)
	}
	if n := m.stats.overQuota.Load(); n != 1 {
		t.Fatalf("over quota counted %d, want 1", n)
	}
	if r := submitAs(t, m, "flood", uuidN(1), message.Options{}); !r.Accepted || !r.Duplicate {
		t.Fatalf("re-submission of a task it holds answered %+v, want a duplicate", r)
	}
	if r := submitAs(t, m, "calm", uuidN(4), message.Options{}); !r.Accepted {
		t.Fatalf("another submitter refused: %+v", r)
	}
	for i := 5; i <= 7; i++ {
		if _, _, err := m.accept(demoTask(uuidN(i), 1), message.MasterSubmitter); err != nil {
			t.Fatalf("the master's own task refused: %v", err)
		}
	}
	for i := 8; i <= 10; i++ {
		if r := submitAs(t, m, "", uuidN(i), message.Options{}); !r.Accepted {
			t.Fatalf("anonymous submission %d not accepted: %+v", i, r)
		}
	}
	// One of flood's tasks is done: it may submit one more.
	m.takeResult(resultOf(sent.all()[0]))
	m.wg.Wait()
	if r := submitAs(t, m, "flood", uuidN(3), message.Options{}); !r.Accepted {
		t.Fatalf("submission after a task is done answered %+v", r)
	}
}

// A new master counts what each submitter holds from the records: live
// tasks only, those of records written before submitters as anonymous.
func TestResumeRestoresWhatEachSubmitterHolds(t *testing.T) {
	rec := func(i int, submitter string, state taskstore.State) taskstore.Record {
		r := taskstore.Record{UUID: uuidN(i), Kind: message.KindTriple, Payload: json.RawMessage("1"), Number: 1, Term: 3,
			State: state, Submitted: time.Now(), Submitter: submitter}
		switch state {
		case taskstore.Running:
			r.Executor, r.Attempts = "w-a", 1
		case taskstore.Done:
			now := message.NewTimestamp(time.Now())
			r.Result = &message.Result{UUID: r.UUID, Executor: "w-a", Kind: r.Kind, Number: 1, Result: message.TripleResult(1), Start: now, Finish: now, Term: 3, Attempt: 1}
		}
		return r
	}
	recs := []taskstore.Record{
		rec(1, "alice", taskstore.Pending), rec(2, "alice", taskstore.Running), rec(3, "alice", taskstore.Done),
		rec(4, "bob", taskstore.Retrying), rec(5, "bob", taskstore.Failed), rec(6, "", taskstore.Pending),
		rec(7, message.MasterSubmitter, taskstore.Pending),
	}
	m, _, _ := lifeMaster(t, func(c *masterConfig) {
		c.limits.perSubmitter = 2
		c.records = &fakeRecords{load: func() ([]taskstore.Record, int64, error) { return recs, 9, nil }}
	})
	if err := m.loadTasks(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := heldBy(m, "alice", "bob", "", message.MasterSubmitter); got != `"alice":2 "bob":1 "":1 "@master":1` {
		t.Fatalf("held after resume: %s", got)
	}
	if r := submitAs(t, m, "alice", uuidN(8), message.Options{}); r.Accepted || !r.Temporary {
		t.Fatalf("alice, at her bound after resume, answered %+v", r)
	}
	if r := submitAs(t, m, "bob", uuidN(9), message.Options{}); !r.Accepted {
		t.Fatalf("bob, under his bound, answered %+v", r)
	}
}

// onSubmit refuses a submitter at its bound from the subject alone: the
// data is not decoded (not counted as invalid) and no slot is taken. One
// submitter holds at most its share of the slots; the others still get in.
func TestOnSubmitRefusesBeforeDecoding(t *testing.T) {
	m, _, _ := lifeMaster(t, func(c *masterConfig) { c.limits.perSubmitter, c.maxPayload = 1, 1<<10 })
	if r := submitAs(t, m, "flood", uuidN(1), message.Options{}); !r.Accepted {
		t.Fatalf("first submission answered %+v", r)
	}
	m.onSubmit(&nats.Msg{Subject: message.SubmitSubject("flood"), Data: []byte("not even JSON")})
	if q, r := m.stats.overQuota.Load(), m.stats.refused.Load(); q != 1 || r != 0 {
		t.Fatalf("over quota %d, refused as invalid %d; want 1 and 0: refused before it was decoded", q, r)
	}
	if n := len(m.slots); n != 0 {
		t.Fatalf("%d slots taken by a refused submission", n)
	}

	// The slots: flood holds its share in progress; its next submission
	// is refused, another submitter's is taken.
	s := m.table.submitters
	s.maxHeld = 0
	for range slotsPerSubmitter {
		if why := s.enter("flood"); why != "" {
			t.Fatal(why)
		}
	}
	m.onSubmit(&nats.Msg{Subject: message.SubmitSubject("flood"), Data: demoTask(uuidN(2), 2).AppendJSON(nil)})
	m.onSubmit(&nats.Msg{Subject: message.SubmitSubject("calm"), Data: demoTask(uuidN(3), 3).AppendJSON(nil)})
	m.wg.Wait()
	if q := m.stats.overQuota.Load(); q != 2 {
		t.Fatalf("over quota %d, want 2", q)
	}
	if m.table.lookup(uuidN(2)) != nil || m.table.lookup(uuidN(3)) == nil {
		t.Fatalf("flood: %v, calm: %v; refused %d", m.table.lookup(uuidN(2)), m.table.lookup(uuidN(3)), m.stats.refused.Load())
	}
	for range slotsPerSubmitter {
		s.leave("flood")
	}
	if n := len(m.slots); n != 0 {
		t.Fatalf("%d slots still taken", n)
	}
	// A subject that names no valid submitter is refused as invalid.
	m.onSubmit(&nats.Msg{Subject: "tasks.submit.@master", Data: demoTask(uuidN(4), 4).AppendJSON(nil)})
	if r := m.stats.refused.Load(); r != 1 || m.table.lookup(uuidN(4)) != nil {
		t.Fatalf("a submission on tasks.submit.@master was taken (refused %d)", r)
	}
}

// The refusal costs a map look-up: no decoding, no goroutine.
func BenchmarkOnSubmitRefused(b *testing.B) {
	m := testMaster(b, func(c *masterConfig) { c.limits.perSubmitter = 1 })
	if _, _, err := m.accept(demoTask(uuidN(1), 1), "flood"); err != nil {
		b.Fatal(err)
	}
	msg := &nats.Msg{Subject: message.SubmitSubject("flood"), Data: demoTask(uuidN(2), 2).AppendJSON(nil)}
	b.ReportAllocs()
	for b.Loop() {
		m.onSubmit(msg)
	}
}
