package node

import (
	"container/heap"
	"container/list"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// The waiting side of the task table: a task counts on one worker's load
// (its slot) from the moment a placement reserves the worker until its
// result comes in; a task that finds no worker of its kind with a free
// slot waits, first in first out per kind, and the master takes it
// (nextWaiting) when wake says a slot may have freed.

// waitQueues holds, per kind, the tasks waiting for a free slot: one
// queue per priority, oldest first; a kind without waiting tasks has no
// entry. A task is in a queue at most once (tracked.queued), and only
// while nobody holds its claim: claiming it (claimLocked) takes it out.
// The table's lock guards it.
type waitQueues map[string]*kindQueue

// kindQueue is one kind's waiting tasks, by priority.
type kindQueue struct {
	levels [message.MaxPriority + 1]list.List
	n      int
}

// agingStep is how long a task waits for its priority to count one more:
// a task of priority 0 goes before fresh tasks of priority 9 once it has
// waited ten steps. So low priorities wait longer under a backlog of high
// ones, but not forever.
const agingStep = 10 * time.Second

// push puts t at the back of its kind's queue of its priority, unless it
// is in already.
func (q waitQueues) push(t *tracked, now time.Time) {
	if t.queued != nil {
		return
	}
	k := q[t.rec.Kind]
	if k == nil {
		k = new(kindQueue)
		q[t.rec.Kind] = k
	}
	t.queued, t.waitSince = k.levels[t.rec.Priority].PushBack(t), now
	k.n++
}

// remove takes t out of its queue, if it is in.
func (q waitQueues) remove(t *tracked) {
	if t.queued == nil {
		return
	}
	k := q[t.rec.Kind]
	k.levels[t.rec.Priority].Remove(t.queued)
	t.queued = nil
	if k.n--; k.n == 0 {
		delete(q, t.rec.Kind)
	}
}

// head is the task of k that goes first at now: the highest priority after
// aging (agingStep), the oldest among equals. Each queue's oldest task has
// aged most in it, so only the heads are compared.
func (k *kindQueue) head(now time.Time) (best *tracked, rank int) {
	for p := range k.levels {
		e := k.levels[p].Front()
		if e == nil {
			continue
		}
		t := e.Value.(*tracked)
		r := p + int(now.Sub(t.waitSince)/agingStep)
		if best == nil || r > rank || r == rank && t.seq < best.seq {
			best, rank = t, r
		}
	}
	return best, rank
}

// retryElsewhere is the worker a task's next attempt should not go to
// unless no other can take it: the one its last attempt failed on.
func retryElsewhere(t *tracked) string {
	if t.rec.State == taskstore.Retrying {
		return t.rec.Executor
	}
	return ""
}

// timers holds the tasks waiting for a time (run_at, or a retry's
// backoff): a heap by rec.NotBefore; tracked.timer is each one's place.
type timers []*tracked

func (h timers) Len() int           { return len(h) }
func (h timers) Less(i, j int) bool { return h[i].rec.NotBefore.Before(h[j].rec.NotBefore) }
func (h timers) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timer, h[j].timer = i+1, j+1
}
func (h *timers) Push(x any) {
	t := x.(*tracked)
	t.timer = len(*h) + 1
	*h = append(*h, t)
}
func (h *timers) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.timer = 0
	return t
}

// unscheduleLocked takes t out of the timers, if it is in.
func (tt *taskTable) unscheduleLocked(t *tracked) {
	if t.timer > 0 {
		heap.Remove(&tt.timers, t.timer-1)
	}
}

// parkLocked puts a task nobody places now where it waits: in the timers
// until rec.NotBefore, else in its waiting queue. The table's lock is held.
func (tt *taskTable) parkLocked(t *tracked, now time.Time) {
	if t.rec.NotBefore.After(now) {
		if t.timer == 0 {
			heap.Push(&tt.timers, t)
		}
		tt.signal() // the master's timer may need to fire earlier
		return
	}
	tt.queues.push(t, now)
	tt.signal()
}

// park ends the claim on a task that is not to be placed now (its time has
// not come, or tasks of its kind wait already): it waits, in the timers or
// its queue. It returns release's answer.
func (tt *taskTable) park(t *tracked, now time.Time) (recordNow bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t.result == nil && t.lost == nil {
		tt.parkLocked(t, now)
	}
	return tt.releaseLocked(t)
}

// due moves the tasks whose time has come at now from the timers to their
// waiting queues, and returns when the next one is due (zero: none).
func (tt *taskTable) due(now time.Time) time.Time {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for len(tt.timers) > 0 && !tt.timers[0].rec.NotBefore.After(now) {
		t := heap.Pop(&tt.timers).(*tracked)
		tt.queues.push(t, now)
	}
	if len(tt.timers) == 0 {
		return time.Time{}
	}
	return tt.timers[0].rec.NotBefore
}

// signal wakes the master to place waiting tasks; it never blocks.
func (tt *taskTable) signal() {
	select {
	case tt.wake <- struct{}{}:
	default:
	}
}

// freeSlotLocked takes t off its worker's load.
func (tt *taskTable) freeSlotLocked(t *tracked) {
	if t.slot != "" {
		tt.book.release(t.slot)
		t.slot = ""
		tt.slotFreedLocked()
	}
}

// slotFreedLocked wakes the master when a task waits for the slot: with
// none waiting, a result costs no wake-up of the master's loop.
func (tt *taskTable) slotFreedLocked() {
	if len(tt.queues) > 0 {
		tt.signal()
	}
}

// outcome is how a placement ended, for placed.
type outcome int

const (
	sentOK  outcome = iota // a worker took the task
	noSlot                 // no worker had a free slot for it: it waits for one
	refusal                // the workers tried did not take it: it is backed off
)

// placed ends a placement's claim on t: a task that found no free slot
// waits for one, one that no worker took is backed off; it returns
// release's answer.
func (tt *taskTable) placed(t *tracked, how outcome, now time.Time) (recordNow bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	switch how {
	case sentOK:
		t.retryAt, t.failures = time.Time{}, 0
	case noSlot:
		if t.result == nil && t.lost == nil {
			tt.parkLocked(t, now)
		}
	case refusal:
		t.unplaceableLocked(now)
		if !t.taken { // no worker runs it: its slot is free until it is placed
			tt.freeSlotLocked(t)
		}
	}
	return tt.releaseLocked(t)
}

// reserve picks a worker for t (see loadBook.pick) and moves t's load to
// it at once, so that two placements cannot both take a worker's last
// free slot. "" when none can take t: t then holds no slot.
func (tt *taskTable) reserve(t *tracked, exclude string, tried []string) string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	w := tt.book.pick(t.rec.Kind, exclude, tried)
	tt.moveSlotLocked(t, w)
	return w
}

// reserveOn moves t's load to worker w, whatever w's load: w is t's own
// worker, which may be running it already.
func (tt *taskTable) reserveOn(t *tracked, w string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.moveSlotLocked(t, w)
}

func (tt *taskTable) moveSlotLocked(t *tracked, w string) {
	if t.slot == w {
		return
	}
	tt.book.move(t.slot, w)
	if t.slot != "" {
		tt.slotFreedLocked()
	}
	t.slot = w
}

// nextWaiting takes the waiting task that goes first (kindQueue.head; the
// oldest of any kind among equals) for which a worker has a free slot: it
// is claimed and that slot reserved. nil when there is none.
func (tt *taskTable) nextWaiting(now time.Time) (*tracked, string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var best *tracked
	var bestW string
	bestRank := 0
	for kind, k := range tt.queues {
		head, rank := k.head(now)
		if best != nil && (rank < bestRank || rank == bestRank && head.seq > best.seq) {
			continue
		}
		if w := tt.book.pick(kind, retryElsewhere(head), nil); w != "" {
			best, bestW, bestRank = head, w, rank
		}
	}
	if best == nil {
		return nil, ""
	}
	tt.claimLocked(best)
	tt.moveSlotLocked(best, bestW)
	return best, bestW
}
