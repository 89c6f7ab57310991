package node

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// A task that finds no worker with a free slot for its kind waits; tasks
// waiting go first in first out per kind, and to a worker of their kind,
// as slots free.
func TestWaitingTasksGoInOrderAsSlotsFree(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{})
	tt.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"x"}, Slots: 1}, {ID: "w-b", Kinds: []string{"y"}, Slots: 1}})
	var ts []*tracked
	for i, kind := range []string{"x", "x", "y", "x"} {
		sub := message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: kind, Payload: json.RawMessage("1")}
		a := admitTest(tt, sub, time.Now())
		ts = append(ts, a.t)
	}
	// The first x and the y got a slot at admission; the others wait.
	if ts[0].slot != "w-a" || ts[2].slot != "w-b" || ts[1].slot != "" || ts[3].slot != "" {
		t.Fatalf("slots at admission: %q %q %q %q", ts[0].slot, ts[1].slot, ts[2].slot, ts[3].slot)
	}
	for _, i := range []int{1, 3} {
		tt.placed(ts[i], noSlot, time.Now())
	}
	for _, i := range []int{0, 2} {
		tt.release(ts[i])
	}
	if got, _ := tt.nextWaiting(time.Now()); got != nil {
		t.Fatalf("task %s taken while every slot is busy", got.rec.UUID)
	}
	// w-b's task is done: nothing waits for y.
	tt.resultIn(resultOf(message.Task{UUID: ts[2].rec.UUID, Executor: "w-b", Kind: "y", Term: 1}), 1)
	if got, _ := tt.nextWaiting(time.Now()); got != nil {
		t.Fatalf("an x task taken for a y slot: %s", got.rec.UUID)
	}
	// w-a's is done: the older waiting x goes first, to w-a.
	ts[0].addPlacementLocked("w-a", 1)
	tt.resultIn(resultOf(message.Task{UUID: ts[0].rec.UUID, Executor: "w-a", Kind: "x", Term: 1, Attempt: 1}), 1)
	got, w := tt.nextWaiting(time.Now())
	if got != ts[1] || w != "w-a" || !got.busy {
		t.Fatalf("next waiting %v on %q; want the second x task, claimed, on w-a", got, w)
	}
	if got, _ := tt.nextWaiting(time.Now()); got != nil {
		t.Fatalf("a second task taken for w-a's one slot")
	}
	if n := tt.kinds().waiting; n["x"] != 1 || len(n) != 1 {
		t.Fatalf("waiting %v, want one x", n)
	}
}

// Admission stops at --max-pending tasks and --max-pending-bytes.
func TestAdmissionIsBounded(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{tasks: 2, bytes: 10})
	sub := func(i int, payload string) message.Submit {
		return message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: "k", Payload: json.RawMessage(payload)}
	}
	if a := admitTest(tt, sub(1, `"123456"`), time.Now()); a.known != unknown {
		t.Fatalf("first: %v", a.known)
	}
	if a := admitTest(tt, sub(2, `"123456"`), time.Now()); a.known != full {
		t.Fatalf("beyond the bytes: %v, want full", a.known)
	}
	if a := admitTest(tt, sub(3, `1`), time.Now()); a.known != unknown {
		t.Fatalf("within both: %v", a.known)
	}
	if a := admitTest(tt, sub(4, `1`), time.Now()); a.known != full {
		t.Fatalf("beyond the tasks: %v, want full", a.known)
	}
}

// Admission stops at --max-ephemeral tasks of durability none; durable
// ones are still taken, a known uuid is still answered, and a non-durable
// task that leaves the table makes room for another.
func TestAdmissionBoundsNonDurable(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{tasks: 10, ephemeral: 2})
	sub := func(i int, durability string) message.Submit {
		return message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: "k", Payload: json.RawMessage(`1`), Durability: durability}
	}
	first := admitTest(tt, sub(1, message.DurabilityNone), time.Now())
	if first.known != unknown {
		t.Fatalf("first: %v", first.known)
	}
	for _, step := range []struct {
		name string
		sub  message.Submit
		want known
	}{
		{"second non-durable", sub(2, message.DurabilityNone), unknown},
		{"beyond the non-durable", sub(3, message.DurabilityNone), fullEphemeral},
		{"durable", sub(4, message.DurabilityDurable), unknown},
		{"known non-durable uuid", sub(1, message.DurabilityNone), pending},
	} {
		if a := admitTest(tt, step.sub, time.Now()); a.known != step.want {
			t.Fatalf("%s: %v, want %v", step.name, a.known, step.want)
		}
	}
	tt.drop(first.t)
	if a := admitTest(tt, sub(5, message.DurabilityNone), time.Now()); a.known != unknown {
		t.Fatalf("after one left: %v, want room for it", a.known)
	}
	if a := admitTest(tt, sub(6, message.DurabilityNone), time.Now()); a.known != fullEphemeral || a.tasks != 2 {
		t.Fatalf("full again: %v holding %d, want fullEphemeral holding 2", a.known, a.tasks)
	}
}

// A worker that runs several kinds takes the oldest waiting task of any of
// them first.
func TestOldestWaitingTaskOfAnyKindGoesFirst(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{})
	tt.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"x", "y"}, Slots: 1}})
	var ts []*tracked
	for i, kind := range []string{"x", "y", "y", "x"} {
		sub := message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: kind, Payload: json.RawMessage("1")}
		ts = append(ts, admitTest(tt, sub, time.Now()).t)
	}
	for _, t := range ts[1:] {
		tt.placed(t, noSlot, time.Now())
	}
	tt.release(ts[0])
	var order []*tracked
	for range 3 {
		tt.reserveOn(lastTaken(order, ts[0]), "") // the last one taken is done: its slot frees
		got, _ := tt.nextWaiting(time.Now())
		if got == nil {
			t.Fatalf("nothing taken after %d", len(order))
		}
		tt.release(got)
		order = append(order, got)
	}
	if order[0] != ts[1] || order[1] != ts[2] || order[2] != ts[3] {
		t.Fatalf("taken in the order %s %s %s; want admission order", order[0].rec.UUID, order[1].rec.UUID, order[2].rec.UUID)
	}
}

// lastTaken is the last task taken, or first when none was.
func lastTaken(order []*tracked, first *tracked) *tracked {
	if len(order) == 0 {
		return first
	}
	return order[len(order)-1]
}

// A waiting task placed another way (its worker left, and reassign gave
// it to another) waits no more: nextWaiting does not send it again.
func TestWaitingTaskPlacedElsewhereIsNotTakenAgain(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{})
	tt.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"x"}, Slots: 1}})
	sub := func(i int) message.Submit {
		return message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: "x", Payload: json.RawMessage("1")}
	}
	busy := admitTest(tt, sub(0), time.Now()).t
	waiting := admitTest(tt, sub(1), time.Now()).t
	tt.placed(waiting, noSlot, time.Now())
	tt.release(busy)
	// Placed elsewhere while in the queue.
	if !tt.claimIf(waiting, func(*tracked) bool { return true }) {
		t.Fatal("cannot claim the waiting task")
	}
	tt.placed(waiting, sentOK, time.Now())
	tt.reserveOn(busy, "") // w-a's slot frees
	if got, _ := tt.nextWaiting(time.Now()); got != nil {
		t.Fatalf("task %s taken from the queue though it was placed", got.rec.UUID)
	}
}

// A task waits in one place at most: placed elsewhere and then waiting
// again, it is counted and taken once; a claim taken on it for any reason
// takes it out of the queue, and it goes back only by waiting again.
func TestTaskWaitsOnceWhateverClaimsIt(t *testing.T) {
	tt := newTaskTable(10, pendingLimits{})
	tt.setWorkers([]registry.Record{{ID: "w-a", Kinds: []string{"x"}, Slots: 1}})
	sub := func(i int) message.Submit {
		return message.Submit{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Kind: "x", Payload: json.RawMessage("1")}
	}
	busy := admitTest(tt, sub(0), time.Now()).t
	tt.release(busy)
	w := admitTest(tt, sub(1), time.Now()).t
	tt.placed(w, noSlot, time.Now())
	claim := func() {
		if !tt.claimIf(w, func(*tracked) bool { return true }) {
			t.Fatal("cannot claim the waiting task")
		}
	}
	claim()
	if n := tt.kinds().waiting["x"]; n != 0 {
		t.Fatalf("a claimed task still counted as waiting (%d)", n)
	}
	tt.placed(w, sentOK, time.Now())
	claim()
	tt.placed(w, noSlot, time.Now()) // timed out there, no slot again
	if n := tt.kinds().waiting["x"]; n != 1 {
		t.Fatalf("waiting %d times, want once", n)
	}
	tt.reserveOn(busy, "")
	if got, _ := tt.nextWaiting(time.Now()); got != w {
		t.Fatalf("next waiting %v, want the task", got)
	}
	tt.release(w)
	if got, _ := tt.nextWaiting(time.Now()); got != nil {
		t.Fatalf("the task taken twice")
	}
}

// admitTest admits sub at now as a master of term 1 would, with no
// options but its priority.
func admitTest(tt *taskTable, sub message.Submit, now time.Time) admission {
	rec := taskstore.Record{UUID: sub.UUID, Kind: sub.Kind, Payload: sub.Payload, Number: sub.Number, Term: 1,
		State: taskstore.Pending, Submitted: now, Priority: sub.Priority}
	return tt.admit(sub, rec, 0, now, true)
}
