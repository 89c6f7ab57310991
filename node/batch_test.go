package node

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

const (
	otherUUID  = "00000000-0000-4000-8000-000000000002"
	brokenUUID = "00000000-0000-4000-8000-000000000003"
)

// TestBatchIsOneWriteAndAnsweredInOrder submits a batch with a duplicate,
// new durable tasks, an ephemeral one, one that did not decode, one whose
// write fails and a known uuid with another payload: one answer each, in
// order, and the durable ones written in one PutMany.
func TestBatchIsOneWriteAndAnsweredInOrder(t *testing.T) {
	records := &fakeRecords{}
	var mu sync.Mutex
	var put []string
	records.put = func(r taskstore.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if r.UUID == brokenUUID {
			return errors.New("etcd is unwell")
		}
		put = append(put, r.UUID)
		return nil
	}
	m := testMaster(t, func(c *masterConfig) { c.records = records })
	submitted(t, m, 5) // testUUID

	ephemeral := demoTask(otherUUID, 2)
	ephemeral.Durability = message.DurabilityNone
	subs := []message.Submit{demoTask(testUUID, 5), demoTask("", 1), ephemeral, {}, demoTask(brokenUUID, 3), demoTask("", 4), demoTask(testUUID, 6)}
	errs := make([]error, len(subs))
	errs[3] = errors.New("not JSON")
	var replies message.SubmitReplies
	m.submitBatch(subs, errs, "", func(rs message.SubmitReplies) { replies = rs })
	if len(replies) != len(subs) {
		t.Fatalf("%d answers to %d submissions: %+v", len(replies), len(subs), replies)
	}
	for i, want := range []struct {
		accepted, duplicate, temporary bool
		error                          string
	}{
		{accepted: true, duplicate: true},
		{accepted: true},
		{accepted: true},
		{error: "invalid task: not JSON"},
		{temporary: true, error: "cannot record the task"},
		{accepted: true},
		{error: "conflict"},
	} {
		r := replies[i]
		if r.Accepted != want.accepted || r.Duplicate != want.duplicate || r.Temporary != want.temporary || !strings.Contains(r.Error, want.error) ||
			(r.Accepted && r.UUID == "") || (subs[i].UUID != "" && r.UUID != subs[i].UUID) {
			t.Errorf("answer %d: %+v, want %+v", i, r, want)
		}
	}
	if n := records.putManys.Load(); n != 1 {
		t.Errorf("the batch's records written in %d PutMany calls, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(put) != 3 || put[1] != replies[1].UUID || put[2] != replies[5].UUID { // testUUID by submitted, then the batch's two
		t.Errorf("records written: %v", put)
	}
	if got := m.table.len(); got != 4 { // testUUID, the two new durable ones, the ephemeral one
		t.Errorf("the master holds %d tasks, want 4", got)
	}
}

// TestBatchOfADeposedMasterIsNotAnswered: no answer, and nothing held, from
// a master that lost its term before the batch or while writing it.
func TestBatchOfADeposedMasterIsNotAnswered(t *testing.T) {
	for _, how := range []string{"before", "fenced"} {
		t.Run(how, func(t *testing.T) {
			records := &fakeRecords{}
			lead := &fakeLead{}
			m := testMaster(t, func(c *masterConfig) { c.records, c.lead = records, lead })
			if how == "before" {
				lead.lost.Store(true)
			} else {
				records.put = func(taskstore.Record) error { return taskstore.ErrFenced }
			}
			answered := false
			subs := []message.Submit{demoTask("", 1), demoTask("", 2)}
			m.submitBatch(subs, make([]error, len(subs)), "", func(message.SubmitReplies) { answered = true })
			if answered {
				t.Error("a deposed master answered a batch")
			}
			if n := m.table.len(); n != 0 {
				t.Errorf("a deposed master holds %d of the batch's tasks", n)
			}
		})
	}
}

// The encoding of a batch's answers is the JSON array of its answers.
func TestSubmitRepliesEncode(t *testing.T) {
	rs := message.SubmitReplies{{UUID: testUUID, Accepted: true}, {Error: "no"}}
	body, err := encodeJSON(rs)
	if err != nil {
		t.Fatal(err)
	}
	var back []message.SubmitReply
	if err := json.Unmarshal(body, &back); err != nil || len(back) != 2 || back[0].UUID != testUUID || back[1].Error != "no" {
		t.Fatalf("%s: %+v, %v", body, back, err)
	}
}

// TestBatchPlacedOneRequestPerWorker: a batch's durable tasks go to their
// worker in one request; a task the worker refused goes alone to the other
// worker, and all of a batch whose request failed (a worker of an earlier
// release) go alone to theirs first. A first placement is not counted as
// placed again.
func TestBatchPlacedOneRequestPerWorker(t *testing.T) {
	for _, how := range []string{"one refused", "request failed"} {
		t.Run(how, func(t *testing.T) {
			var mu sync.Mutex
			batches := map[string][]message.Task{}
			var alone []message.Task
			m := testMaster(t, func(c *masterConfig) {
				c.send = func(_ context.Context, task message.Task, _ bool) error {
					mu.Lock()
					defer mu.Unlock()
					alone = append(alone, task)
					return nil
				}
				c.sendBatch = func(_ context.Context, w string, tasks []message.Task) ([]message.Ack, error) {
					mu.Lock()
					defer mu.Unlock()
					batches[w] = tasks
					if how == "request failed" {
						return nil, errors.New("bad acks: the batch was answered with one ack")
					}
					acks := make([]message.Ack, len(tasks))
					for i := range acks {
						acks[i] = message.Ack{Accepted: i != 1, Reason: "busy", Term: 7}
					}
					return acks, nil
				}
			})
			m.table.setWorkers(workers("w-a", "w-b"))
			subs := make([]message.Submit, 6)
			for i := range subs {
				subs[i] = demoTask("", int64(i))
			}
			m.submitBatch(subs, make([]error, len(subs)), "", func(message.SubmitReplies) {})
			m.wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(batches) != 2 || len(batches["w-a"])+len(batches["w-b"]) != 6 {
				t.Fatalf("batches sent: %+v", batches)
			}
			first := map[string]string{} // uuid: the worker of its batch
			for w, tasks := range batches {
				for _, task := range tasks {
					first[task.UUID] = w
				}
			}
			want, wantRedispatched := 2, int64(2)
			if how == "request failed" {
				want, wantRedispatched = 6, 6
			}
			if len(alone) != want {
				t.Fatalf("sent alone: %d tasks, want %d", len(alone), want)
			}
			for _, task := range alone {
				if sameWorker := task.Executor == first[task.UUID]; sameWorker != (how == "request failed") {
					t.Errorf("task of %s's batch sent alone to %s", first[task.UUID], task.Executor)
				}
			}
			if got := m.stats.dispatched.Load(); got != 6 {
				t.Errorf("dispatched %d, want 6", got)
			}
			if got := m.stats.redispatched.Load(); got != wantRedispatched {
				t.Errorf("redispatched %d, want %d (the sendings after a first)", got, wantRedispatched)
			}
		})
	}
}

// The answer to a batch carries at most maxBatchResults bytes of its
// duplicates' results.
func TestTrimResults(t *testing.T) {
	big := &message.Result{Result: json.RawMessage(`"` + strings.Repeat("x", maxBatchResults/2) + `"`)}
	rs := message.SubmitReplies{{Result: big}, {Error: "no"}, {Result: big}, {Result: big}}
	trimResults(rs)
	if rs[0].Result == nil || rs[2].Result != nil || rs[3].Result != nil {
		t.Errorf("results kept: %v %v %v", rs[0].Result != nil, rs[2].Result != nil, rs[3].Result != nil)
	}
}

// TestWaitingTasksDispatchedInOneRequest: tasks that waited for a worker
// are placed, when one comes, with one write of their moved records and
// one request.
func TestWaitingTasksDispatchedInOneRequest(t *testing.T) {
	records := &fakeRecords{}
	var mu sync.Mutex
	var batches [][]message.Task
	m := testMaster(t, func(c *masterConfig) {
		c.records = records
		c.sendBatch = func(_ context.Context, w string, tasks []message.Task) ([]message.Ack, error) {
			mu.Lock()
			defer mu.Unlock()
			batches = append(batches, tasks)
			return make([]message.Ack, len(tasks)), errors.New("refused whole") // then each goes alone
		}
	})
	for i := range 3 {
		var reply message.SubmitReply
		m.submit(demoTask("", int64(i)), "", func(r message.SubmitReply) { reply = r })
		if !reply.Accepted || reply.State != "pending" {
			t.Fatalf("submission %d: %+v", i, reply)
		}
	}
	m.wg.Wait()
	m.table.setWorkers(workers("w-a"))
	m.dispatch()
	m.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 1 || len(batches[0]) != 3 || batches[0][2].Executor != "w-a" || batches[0][2].Attempt != 1 {
		t.Fatalf("batches: %+v", batches)
	}
	if n := records.putManys.Load(); n != 1 {
		t.Errorf("the moved records written in %d PutMany calls, want 1", n)
	}
}

// A worker's batch is cut at about maxBatchBytes of payloads.
func TestBatchOfLargeTasksIsCut(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	m := testMaster(t, func(c *masterConfig) {
		c.maxPayload = 1 << 20
		c.send = func(context.Context, message.Task, bool) error { // a batch of one goes alone
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, 1)
			return nil
		}
		c.sendBatch = func(_ context.Context, w string, tasks []message.Task) ([]message.Ack, error) {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(tasks))
			acks := make([]message.Ack, len(tasks))
			for i := range acks {
				acks[i].Accepted = true
			}
			return acks, nil
		}
	})
	m.table.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"k"}}})
	subs := make([]message.Submit, 7)
	for i := range subs {
		subs[i] = message.Submit{Kind: "k", Payload: json.RawMessage(`"` + strings.Repeat("x", 300<<10) + `"`)}
	}
	var replies message.SubmitReplies
	m.submitBatch(subs, make([]error, len(subs)), "", func(rs message.SubmitReplies) { replies = rs })
	m.wg.Wait()
	for i, r := range replies {
		if !r.Accepted {
			t.Fatalf("answer %d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		if n > 3 { // 3 payloads of 300 KiB are under a MiB, 4 over
			t.Errorf("a batch of %d tasks of 300 KiB", n)
		}
		total += n
	}
	if total != 7 {
		t.Errorf("batches %v, want 7 tasks in all", sizes)
	}
}
