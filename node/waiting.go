package node

import (
	"container/list"
	"time"
)

// The waiting side of the task table: a task counts on one worker's load
// (its slot) from the moment a placement reserves the worker until its
// result comes in; a task that finds no worker of its kind with a free
// slot waits, first in first out per kind, and the master takes it
// (nextWaiting) when wake says a slot may have freed.

// waitQueues holds, per kind, the tasks waiting for a free slot, oldest
// first; a kind without waiting tasks has no entry. A task is in its
// kind's queue at most once (tracked.queued), and only while nobody holds
// its claim: claiming it (claimLocked) takes it out. The table's lock
// guards it.
type waitQueues map[string]*list.List

// push puts t at the back of its kind's queue, unless it is in already.
func (q waitQueues) push(t *tracked) {
	if t.queued != nil {
		return
	}
	l := q[t.rec.Kind]
	if l == nil {
		l = list.New()
		q[t.rec.Kind] = l
	}
	t.queued = l.PushBack(t)
}

// remove takes t out of its queue, if it is in.
func (q waitQueues) remove(t *tracked) {
	if t.queued == nil {
		return
	}
	l := q[t.rec.Kind]
	l.Remove(t.queued)
	t.queued = nil
	if l.Len() == 0 {
		delete(q, t.rec.Kind)
	}
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
		if t.result == nil {
			tt.queues.push(t)
		}
	case refusal:
		t.unplaceableLocked(now)
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

// nextWaiting takes the oldest waiting task, of any kind, for which a
// worker has a free slot: it is claimed and that slot reserved. nil when
// there is none.
func (tt *taskTable) nextWaiting() (*tracked, string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var best *tracked
	var bestW string
	for kind, l := range tt.queues {
		head := l.Front().Value.(*tracked)
		if best != nil && head.seq > best.seq {
			continue
		}
		if w := tt.book.pick(kind, "", nil); w != "" {
			best, bestW = head, w
		}
	}
	if best == nil {
		return nil, ""
	}
	tt.claimLocked(best)
	tt.moveSlotLocked(best, bestW)
	return best, bestW
}
