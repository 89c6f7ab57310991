package node

import "time"

// The waiting side of the task table: a task counts on one worker's load
// (its slot) from the moment a placement reserves the worker until its
// result comes in; a task that finds no worker of its kind with a free
// slot waits, first in first out per kind, and the master takes it
// (nextWaiting) when wake says a slot may have freed.

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
	if len(tt.waiting) > 0 {
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
		// Placed by another way than nextWaiting (its worker left): it
		// waits no more, and its entry in the queue is skipped.
		t.retryAt, t.failures, t.waiting = time.Time{}, 0, false
	case noSlot:
		if !t.waiting && t.result == nil {
			t.waiting = true
			tt.waiting[t.rec.Kind] = append(tt.waiting[t.rec.Kind], t)
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
	for kind, q := range tt.waiting {
		for len(q) > 0 && (!q[0].waiting || q[0].busy) { // done, or claimed for its result, meanwhile
			q[0].waiting = false
			q = q[1:]
		}
		if len(q) == 0 {
			delete(tt.waiting, kind)
			continue
		}
		tt.waiting[kind] = q
		if best != nil && q[0].seq > best.seq {
			continue
		}
		if w := tt.book.pick(kind, "", nil); w != "" {
			best, bestW = q[0], w
		}
	}
	if best == nil {
		return nil, ""
	}
	q := tt.waiting[best.rec.Kind]
	tt.waiting[best.rec.Kind] = q[1:]
	if len(q) == 1 {
		delete(tt.waiting, best.rec.Kind)
	}
	best.waiting, best.busy = false, true
	tt.moveSlotLocked(best, bestW)
	return best, bestW
}

// waitingCount is how many tasks wait for a slot, per kind.
func (tt *taskTable) waitingCount() map[string]int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	n := make(map[string]int, len(tt.waiting))
	for kind, q := range tt.waiting {
		for _, t := range q {
			if t.waiting {
				n[kind]++
			}
		}
	}
	return n
}
