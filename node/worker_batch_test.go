package node

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/message"
)

// A batch of tasks in one request: each taken or refused as alone, one ack
// each in order, and a task sent twice run once.
func TestWorkerTakesABatchOfTasks(t *testing.T) {
	r := newTermRig(t)
	term, _ := r.campaign()
	task := func(executor string, n int64) message.Task {
		return message.Task{UUID: uuid.NewString(), Executor: executor, Number: n, Term: term, Attempt: 1}
	}
	a, b, other := task(r.w.id, 1), task(r.w.id, 2), task("w-00000002", 3)
	stale := task(r.w.id, 4)
	stale.Term = term - 1
	msg, err := r.conn.Request(message.TaskSubject(r.w.id), message.AppendTaskBatch(nil, []message.Task{a, b, other, a, stale}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	acks, err := message.DecodeAcks(msg.Data, 5)
	if err != nil {
		t.Fatalf("%s: %v", msg.Data, err)
	}
	for i, want := range []string{"", "", "task is for w-00000002", "", "stale term"} {
		if ack := acks[i]; ack.Accepted != (want == "") || !strings.Contains(ack.Reason, want) {
			t.Errorf("ack %d: %+v, want %q", i, ack, want)
		}
	}
	for _, task := range []message.Task{a, b} {
		if res := r.waitResult(task.UUID); string(res.Result) != string(message.TripleResult(task.Number)) {
			t.Errorf("result of %d: %+v", task.Number, res)
		}
	}
	if got := r.w.redelivered.Load(); got != 1 {
		t.Errorf("redelivered %d, want 1 (the second a)", got)
	}
	if got := r.w.completed.Load(); got != 2 {
		t.Errorf("completed %d, want 2", got)
	}

	// A batch that does not decode is refused with one ack.
	msg, err = r.conn.Request(message.TaskSubject(r.w.id), []byte(`[]`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := message.DecodeAcks(msg.Data, 0); err == nil || !strings.Contains(err.Error(), "invalid batch of tasks") {
		t.Errorf("an empty batch: %s, %v", msg.Data, err)
	}
}
