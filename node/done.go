package node

import (
	"time"

	"github.com/meshpool/meshpool/message"
)

// doneIndex is the master's memory of recorded tasks, kept to answer a
// re-submitted uuid with its result for the result retention. Its memory
// would grow with throughput × retention, so it holds at most max tasks and
// forgets the oldest first. It keeps the uuids it forgot early, until their
// time would have run out, in a Bloom filter (forgotten): for a uuid that
// may be one of them, mayHaveForgotten says so, and the master looks it up
// in etcd, where a durable task's record is kept for the retention. Other
// uuids (all new submissions but about 1 %) need no lookup.
type doneIndex struct {
	max    int
	byID   map[string]doneTask
	order  []doneEntry // in insertion order, which is expiry order; from head
	head   int
	forgot *forgotten // the tasks forgotten early
}

// doneTask is what a re-submission is answered with (its result) and
// compared to (the fingerprint of its kind and payload, and durability).
type doneTask struct {
	print     uint64          // the task's work fingerprint (taskTable.workPrint)
	state     string          // done, failed or cancelled
	result    *message.Result // nil for a durable task's result larger than maxDoneResult: look it up in etcd
	until     time.Time
	ephemeral bool // durability none
}

// maxDoneResult bounds the result (or error) bytes the done index keeps of
// one durable task: 200,000 tasks of 1 KiB are 200 MiB at most. A larger
// result is read from etcd when its uuid is submitted again. A task of
// durability none has no other copy: its result is kept whatever its size.
const maxDoneResult = 1 << 10

type doneEntry struct {
	id    string
	until time.Time
}

func newDoneIndex(max int) *doneIndex {
	return &doneIndex{max: max, byID: make(map[string]doneTask), forgot: newForgotten()}
}

func (d *doneIndex) get(id string) (doneTask, bool) {
	t, ok := d.byID[id]
	return t, ok
}

func (d *doneIndex) len() int { return len(d.byID) }

// add remembers id, in its final state, until until, forgetting the
// oldest tasks beyond max.
func (d *doneIndex) add(id string, print uint64, state string, result *message.Result, ephemeral bool, until time.Time) {
	if result != nil && !ephemeral && len(result.Result)+len(result.Error) > maxDoneResult {
		result = nil
	}
	d.byID[id] = doneTask{print: print, state: state, result: result, until: until, ephemeral: ephemeral}
	d.order = append(d.order, doneEntry{id: id, until: until})
	for len(d.byID) > d.max && d.head < len(d.order) {
		e := d.pop()
		if t, ok := d.byID[e.id]; ok && t.until.Equal(e.until) {
			delete(d.byID, e.id)
			d.forgot.add(e.id, e.until)
		}
	}
}

// remove forgets id: it is live again (retried).
func (d *doneIndex) remove(id string) { delete(d.byID, id) }

// expire forgets the tasks whose time has run out by now.
func (d *doneIndex) expire(now time.Time) {
	for d.head < len(d.order) && !d.order[d.head].until.After(now) {
		e := d.pop()
		if t, ok := d.byID[e.id]; ok && t.until.Equal(e.until) {
			delete(d.byID, e.id)
		}
	}
}

// mayHaveForgotten reports whether id may be a task the index forgot before
// its time ran out at now. It is never false for such a task.
func (d *doneIndex) mayHaveForgotten(id string, now time.Time) bool {
	return d.forgot.mayContain(id, now)
}

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
