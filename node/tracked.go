package node

import (
	"container/list"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// tracked is an accepted task the master follows until its result is
// recorded. Its fields are guarded by the table's lock, except those set at
// creation (ephemeral, print, seq, rec.UUID, rec.Kind, rec.Payload,
// rec.Number, rec.Submitter) and those only the claim's
// holder changes (rec.Executor, sent), which the holder may read without it.
type tracked struct {
	rec       taskstore.Record
	ephemeral bool            // durability none: never written to etcd
	accepted  bool            // its record is written (or it is ephemeral): it may be called accepted
	sent      time.Time       // when its worker acked it; zero while unplaced
	busy      bool            // claimed: a placement, a resending or a recording is under way
	result    *message.Result // the first result received, until recorded
	sentTo    []placement     // this term's latest sendings, oldest first, at most maxPlacements
	retryAt   time.Time       // no worker took it: not placed again before this
	failures  int             // placements in a row that found no worker to take it
	resentAt  time.Time       // when it was last sent again to its worker for a submitter asking after it
	slot      string          // the worker whose load counts this task; "" when none
	queued    *list.Element   // its place in the table's waiting queue of its kind; nil when not waiting
	waitSince time.Time       // when it joined its waiting queue, for the aging of priorities
	timer     int             // its place in the table's timers, plus 1; 0 when not waiting for a time
	taken     bool            // a worker took the current attempt (or may have: resumed running)
	lost      *failure        // the master gave up on the current attempt; recorded by the claim's holder
	seq       uint64          // admission order
	print     uint64          // fingerprint of rec.Kind and rec.Payload (workPrint), set at creation
}

// placement is one sending of a task, under the master's term: a result is
// recorded only when it answers one of them.
type placement struct {
	executor string
	attempt  int64
	timedOut bool // the attempt is over for the master: it timed out, its worker left, or its error is recorded
}

// maxPlacements bounds the sendings a task remembers. A result from an
// older sending than these is refused; the task is sent again if need be.
const maxPlacements = 8

// sentLocked reports whether the task was sent to executor as attempt in
// this term. The table's lock is held.
func (t *tracked) sentLocked(executor string, attempt int64) (p placement, ok bool) {
	for _, p := range t.sentTo {
		if p.executor == executor && p.attempt == attempt {
			return p, true
		}
	}
	return placement{}, false
}

// overLocked marks the sendings of attempts up to attempt as over: an
// error from them comes after their failure was recorded. The table's lock
// is held.
func (t *tracked) overLocked(attempt int64) {
	for i := range t.sentTo {
		if t.sentTo[i].attempt <= attempt {
			t.sentTo[i].timedOut = true
		}
	}
}

// addPlacementLocked remembers a sending, forgetting the oldest beyond
// maxPlacements; a sending again of the same attempt to the same worker is
// the same sending. The table's lock is held.
func (t *tracked) addPlacementLocked(executor string, attempt int64) {
	p := placement{executor: executor, attempt: attempt}
	for _, q := range t.sentTo {
		if q.executor == executor && q.attempt == attempt {
			return
		}
	}
	if len(t.sentTo) == maxPlacements {
		t.sentTo = append(t.sentTo[:0], t.sentTo[1:]...)
	}
	t.sentTo = append(t.sentTo, p)
}

// unplaceableLocked backs the task off after a placement that found no
// worker to take it: 1 s, 2 s, 4 s… up to 30 s; a membership change places
// it again at once. The table's lock is held.
func (t *tracked) unplaceableLocked(now time.Time) {
	t.failures++
	t.retryAt = now.Add(min(time.Second<<min(t.failures-1, 5), 30*time.Second))
}
