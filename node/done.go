package node

import (
	"time"

	"github.com/google/uuid"

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
	max     int
	byID    map[doneKey]doneRecord
	order   []doneEntry // in insertion order, which is expiry order; from head
	head    int
	results resultArena // the results kept, in insertion order too
	forgot  *forgotten  // the tasks forgotten early
}

// doneKey is a task's uuid as its 16 bytes. The index holds up to 200,000
// tasks for as long as the result retention: its map and queue hold no
// pointers at all (the results are in an arena of large chunks), so that
// the garbage collector, which walks every pointer of the heap each
// cycle, does not walk them (BenchmarkDoneIndexGC).
type doneKey [16]byte

// keyOf is id's key; ok is false for an id that is not a UUID (no task
// has one: submissions and records are checked).
func keyOf(id string) (k doneKey, ok bool) {
	u, err := uuid.Parse(id)
	return doneKey(u), err == nil
}

// doneTask is what a re-submission is answered with (its result) and
// compared to (the fingerprint of its kind and payload, and durability).
type doneTask struct {
	print     uint64 // the task's work fingerprint (taskTable.workPrint)
	until     int64  // Unix nanoseconds
	result    []byte // its Result as JSON; nil for a durable task's result larger than maxDoneResult: look it up in etcd
	state     finalState
	ephemeral bool // durability none
}

// doneRecord is a doneTask as the index holds it, its result in the arena.
type doneRecord struct {
	print     uint64
	until     int64
	result    resultRef
	state     finalState
	ephemeral bool
}

// finalState is a final state without a string's pointer.
type finalState uint8

var finalStates = []string{"done", "failed", "cancelled"}

func finalStateOf(s string) finalState {
	for i, f := range finalStates {
		if f == s {
			return finalState(i)
		}
	}
	return 0
}

func (s finalState) String() string { return finalStates[s] }

// Result decodes the task's result; nil when it has none kept.
func (t doneTask) Result() *message.Result {
	if t.result == nil {
		return nil
	}
	r, err := message.DecodeResult(t.result)
	if err != nil { // it was valid when it was kept
		return nil
	}
	return &r
}

// maxDoneResult bounds the result (or error) bytes the done index keeps of
// one durable task: 200,000 tasks of 1 KiB are 200 MiB at most. A larger
// result is read from etcd when its uuid is submitted again. A task of
// durability none has no other copy: its result is kept whatever its size.
const maxDoneResult = 1 << 10

type doneEntry struct {
	key   doneKey
	until int64
	chunk uint32 // the arena's newest chunk when it was added
}

func newDoneIndex(max int) *doneIndex {
	return &doneIndex{max: max, byID: make(map[doneKey]doneRecord), forgot: newForgotten()}
}

func (d *doneIndex) get(id string) (doneTask, bool) {
	k, ok := keyOf(id)
	if !ok {
		return doneTask{}, false
	}
	r, ok := d.byID[k]
	return doneTask{print: r.print, until: r.until, result: d.results.get(r.result), state: r.state, ephemeral: r.ephemeral}, ok
}

func (d *doneIndex) len() int { return len(d.byID) }

// add remembers id, in its final state, until until, forgetting the
// oldest tasks beyond max.
func (d *doneIndex) add(id string, print uint64, state string, result *message.Result, ephemeral bool, until time.Time) {
	k, ok := keyOf(id)
	if !ok {
		return
	}
	var kept resultRef
	if result != nil && (ephemeral || len(result.Result)+len(result.Error) <= maxDoneResult) {
		kept = d.results.put(result)
	}
	u := until.UnixNano()
	d.byID[k] = doneRecord{print: print, state: finalStateOf(state), result: kept, until: u, ephemeral: ephemeral}
	d.order = append(d.order, doneEntry{key: k, until: u, chunk: d.results.newest()})
	for len(d.byID) > d.max && d.head < len(d.order) {
		e := d.pop()
		if t, ok := d.byID[e.key]; ok && t.until == e.until {
			delete(d.byID, e.key)
			d.forgot.add(uuid.UUID(e.key).String(), time.Unix(0, e.until))
		}
	}
}

// remove forgets id: it is live again (retried).
func (d *doneIndex) remove(id string) {
	if k, ok := keyOf(id); ok {
		delete(d.byID, k)
	}
}

// expire forgets the tasks whose time has run out by now.
func (d *doneIndex) expire(now time.Time) {
	for n := now.UnixNano(); d.head < len(d.order) && d.order[d.head].until <= n; {
		e := d.pop()
		if t, ok := d.byID[e.key]; ok && t.until == e.until {
			delete(d.byID, e.key)
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
	// Every task still held was added after the new head: the chunks
	// before its chunk hold no result of theirs.
	if d.head < len(d.order) {
		d.results.freeBefore(d.order[d.head].chunk)
	} else {
		d.results.freeBefore(d.results.newest())
	}
	if d.head > 1024 && d.head > len(d.order)/2 { // reuse the space
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
	return e
}

// resultArena keeps results as JSON in chunks of resultChunk bytes,
// appended in insertion order and freed in it: a few large pointer-free
// buffers instead of one small object per result.
type resultArena struct {
	chunks [][]byte // chunks[i] is chunk number first+i; the last is written
	first  uint32
}

const resultChunk = 1 << 20

// resultRef places a result in the arena; n 0 is none.
type resultRef struct{ chunk, off, n uint32 }

func (a *resultArena) newest() uint32 { return a.first + uint32(max(len(a.chunks), 1)) - 1 }

// put appends r's JSON to the newest chunk, or to a new one if it is full.
func (a *resultArena) put(r *message.Result) resultRef {
	size := 192 + len(r.Result) + len(r.Error)
	if len(a.chunks) == 0 || len(a.chunks[len(a.chunks)-1])+size > cap(a.chunks[len(a.chunks)-1]) {
		a.chunks = append(a.chunks, make([]byte, 0, max(resultChunk, size)))
	}
	last := &a.chunks[len(a.chunks)-1]
	off := len(*last)
	*last = r.AppendJSON(*last)
	return resultRef{chunk: a.newest(), off: uint32(off), n: uint32(len(*last) - off)}
}

// get returns the JSON at ref; nil for none.
func (a *resultArena) get(ref resultRef) []byte {
	if ref.n == 0 {
		return nil
	}
	c := a.chunks[ref.chunk-a.first]
	return c[ref.off : ref.off+ref.n : ref.off+ref.n]
}

// freeBefore drops the chunks numbered before chunk.
func (a *resultArena) freeBefore(chunk uint32) {
	if chunk <= a.first {
		return
	}
	n := min(int(chunk-a.first), len(a.chunks)-1) // the newest stays: it is written
	if n <= 0 {
		return
	}
	clear(a.chunks[:n])
	a.chunks = a.chunks[n:]
	a.first += uint32(n)
}
