package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
)

// The master cancels a task on its worker with a message.Cancel on
// tasks.<id>.cancel: the task's handler context ends, a task waiting for a
// slot never runs, and neither publishes a result (the master has recorded
// the task cancelled already).

// errCancelled is the cause of a cancelled task's context (context.Cause).
var errCancelled = errors.New("cancelled by the master")

// handleCancel takes a cancel order. It is an order from the master, so it
// is checked as a task is: for this worker, of the current master's term.
// A valid one is accepted even when no task of its uuid runs here (it may
// have finished), and its uuid is remembered for a while, so the task, sent
// before the cancel and arriving after it, is refused.
func (w *worker) handleCancel(msg *nats.Msg) {
	c, err := message.DecodeCancel(msg.Data)
	if err != nil {
		w.refuseCancel(msg, "invalid cancel: "+err.Error(), "uuid", "")
		return
	}
	if c.Executor != w.id {
		w.refuseCancel(msg, fmt.Sprintf("cancel is for %s, not %s", c.Executor, w.id), "uuid", c.UUID)
		return
	}
	if err := w.checkTerm(c.Term); err != nil {
		w.refuseCancel(msg, err.Error(), "uuid", c.UUID, "term", c.Term)
		return
	}
	ack := message.Ack{Accepted: true, Term: w.term.Load()}
	if n := w.cancel(c.UUID, c.Attempt); n > 0 {
		w.cancelled.Add(int64(n))
	} else {
		ack.Reason = "not running here"
		w.log.Info("cancel of a task not running here", "uuid", c.UUID)
	}
	w.reply(msg, ack)
}

// cancel ends the context of every task of uuid id taken and not done,
// takes them out of running, and remembers id as cancelled up to attempt. It returns how
// many it cancelled. Each one's work logs it when it stops.
func (w *worker) cancel(id string, attempt int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancels.add(id, attempt, time.Now())
	n := 0
	for key, t := range w.running {
		if key.uuid == id {
			t.cancelled = true
			t.cancel(errCancelled)
			delete(w.running, key)
			n++
		}
	}
	return n
}

func (w *worker) refuseCancel(msg *nats.Msg, reason string, attrs ...any) {
	w.log.Warn("cancel refused", append(attrs, "reason", reason, ratelog.Limit)...)
	w.reply(msg, message.Ack{Accepted: false, Reason: reason, Term: w.term.Load()})
}

// Bounds of the cancelled uuids a worker remembers: the last cancelMemory,
// each for cancelMemoryFor. A task and its cancel are sent moments apart.
const (
	cancelMemory    = 1024
	cancelMemoryFor = time.Minute
)

// cancelledIDs remembers the uuids of tasks cancelled lately: the last
// capacity of them, each for ttl. Not safe for concurrent use (w.mu
// guards the worker's).
type cancelledIDs struct {
	at   map[string]cancelledAt
	ring []cancelledEntry // the last capacity adds; next is the oldest
	next int
	seq  uint64
	ttl  time.Duration
}

type cancelledAt struct {
	at      time.Time
	attempt int64  // the attempt cancelled: later ones are not
	seq     uint64 // of the add that remembered it
}

type cancelledEntry struct {
	id  string
	seq uint64
}

func newCancelledIDs(capacity int, ttl time.Duration) *cancelledIDs {
	return &cancelledIDs{at: make(map[string]cancelledAt, capacity), ring: make([]cancelledEntry, capacity), ttl: ttl}
}

// add remembers id as cancelled at now up to attempt, forgetting the
// oldest beyond capacity.
func (c *cancelledIDs) add(id string, attempt int64, now time.Time) {
	old := c.ring[c.next]
	if cur, ok := c.at[old.id]; ok && cur.seq == old.seq {
		delete(c.at, old.id)
	}
	c.seq++
	c.at[id] = cancelledAt{now, attempt, c.seq}
	c.ring[c.next] = cancelledEntry{id, c.seq}
	c.next = (c.next + 1) % len(c.ring)
}

// has reports whether attempt of id was cancelled less than ttl before now.
func (c *cancelledIDs) has(id string, attempt int64, now time.Time) bool {
	e, ok := c.at[id]
	return ok && now.Sub(e.at) < c.ttl && attempt <= e.attempt
}
