package node

import (
	"time"

	"github.com/meshpool/meshpool/message"
)

// doneIndex is the master's memory of recorded tasks, kept to answer a
// re-submitted uuid with its result for the result retention. Its memory
// would grow with throughput × retention, so it holds at most max tasks and
// forgets the oldest first. After it has forgotten a task early it says so
// (mayHaveForgotten) until that task's time would have run out: the master
// then looks a missing uuid up in etcd, where a durable task's record is
// kept for the retention.
type doneIndex struct {
	max   int
	byID  map[string]doneTask
	order []doneEntry // in insertion order, which is expiry order; from head
	head  int
	// forgotUntil is the latest expiry among the tasks forgotten early.
	forgotUntil time.Time
}

type doneTask struct {
	result *message.Result
	until  time.Time
}

type doneEntry struct {
	id    string
	until time.Time
}

func newDoneIndex(max int) *doneIndex {
	return &doneIndex{max: max, byID: make(map[string]doneTask)}
}

func (d *doneIndex) get(id string) (doneTask, bool) {
	t, ok := d.byID[id]
	return t, ok
}

func (d *doneIndex) len() int { return len(d.byID) }

// add remembers id until until, forgetting the oldest tasks beyond max.
func (d *doneIndex) add(id string, result *message.Result, until time.Time) {
	d.byID[id] = doneTask{result: result, until: until}
	d.order = append(d.order, doneEntry{id: id, until: until})
	for len(d.byID) > d.max && d.head < len(d.order) {
		e := d.pop()
		if t, ok := d.byID[e.id]; ok && t.until.Equal(e.until) {
			delete(d.byID, e.id)
			if e.until.After(d.forgotUntil) {
				d.forgotUntil = e.until
			}
		}
	}
}

// expire forgets the tasks whose time has run out by now.
func (d *doneIndex) expire(now time.Time) {
	for d.head < len(d.order) && !d.order[d.head].until.After(now) {
		e := d.pop()
		if t, ok := d.byID[e.id]; ok && t.until.Equal(e.until) {
			delete(d.byID, e.id)
		}
	}
}

// mayHaveForgotten reports whether a task recorded within the retention
// may be missing from the index at now.
func (d *doneIndex) mayHaveForgotten(now time.Time) bool { return now.Before(d.forgotUntil) }

func (d *doneIndex) pop() doneEntry {
	e := d.order[d.head]
	d.order[d.head] = doneEntry{}
	d.head++
	if d.head > 1024 && d.head > len(d.order)/2 { // reuse the space
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
	return e
}
