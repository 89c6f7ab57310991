package node

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

func TestCheckResult(t *testing.T) {
	task := &tracked{rec: taskstore.Record{UUID: "00000000-0000-4000-8000-000000000001", Kind: message.KindTriple, Payload: json.RawMessage("5"), Number: 5, Term: 7}}
	task.addPlacementLocked("a", 1)
	task.overLocked(1) // attempt 1, on a, timed out
	task.addPlacementLocked("b", 2)
	task.addPlacementLocked("a", 3) // a later attempt on a: a sending of its own
	now := message.NewTimestamp(time.Now())
	ok := message.Result{UUID: task.rec.UUID, Executor: "b", Kind: message.KindTriple, Number: 5, Result: json.RawMessage("15"), Start: now, Finish: now, Term: 7, Attempt: 2}
	tests := []struct {
		name     string
		change   func(*message.Result)
		refused  bool
		timedOut bool
	}{
		{"the latest sending's worker", func(*message.Result) {}, false, false},
		{"an earlier sending that timed out", func(r *message.Result) { r.Executor, r.Attempt = "a", 1 }, false, true},
		{"a later attempt on a worker that timed out before", func(r *message.Result) { r.Executor, r.Attempt = "a", 3 }, false, false},
		{"an error from a later attempt on a worker that timed out before", func(r *message.Result) { r.Executor, r.Attempt, r.Result, r.Error = "a", 3, nil, "boom" }, false, false},
		{"a worker it was not sent to", func(r *message.Result) { r.Executor = "c" }, true, false},
		{"an attempt not sent to that worker", func(r *message.Result) { r.Attempt = 1 }, true, false},
		{"another term", func(r *message.Result) { r.Term = 6 }, true, false},
		{"another number", func(r *message.Result) { r.Number, r.Result = 6, json.RawMessage("18") }, true, false},
		{"not the work rule's answer", func(r *message.Result) { r.Result = json.RawMessage("16") }, true, false},
		{"another kind", func(r *message.Result) { r.Kind = "other" }, true, false},
		{"an error from the latest sending", func(r *message.Result) { r.Result, r.Error = nil, "boom" }, false, false},
		{"an error from a sending that timed out", func(r *message.Result) { r.Executor, r.Attempt, r.Result, r.Error = "a", 1, nil, "timed out" }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ok
			tt.change(&res)
			p, why := checkResult(task, res, 7)
			if (why != "") != tt.refused || p.timedOut != tt.timedOut {
				t.Fatalf("refused %q, timed out %v; want refused %v, timed out %v", why, p.timedOut, tt.refused, tt.timedOut)
			}
		})
	}
}

func TestPlacementsAreBounded(t *testing.T) {
	task := &tracked{}
	for i := range 3 * maxPlacements {
		task.addPlacementLocked(fmt.Sprint("w", i%3), int64(i+1))
	}
	if len(task.sentTo) != maxPlacements {
		t.Fatalf("%d sendings remembered, want %d", len(task.sentTo), maxPlacements)
	}
	if _, ok := task.sentLocked("w2", 3*maxPlacements); !ok {
		t.Fatal("the latest sending forgotten")
	}
	if _, ok := task.sentLocked("w0", 1); ok {
		t.Fatal("the oldest sending kept")
	}
}
