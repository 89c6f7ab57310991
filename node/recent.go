package node

import "github.com/meshpool/meshpool/message"

// Bounds of the results a worker remembers for redeliveries: at most
// recentCapacity of them and recentBytes of their result and error text.
const (
	recentCapacity = 16384
	recentBytes    = 64 << 20
)

// recentResults remembers the last results a worker produced, each with
// the fingerprint of the task it answers (see workPrint), oldest forgotten
// first. Not safe for concurrent use.
type recentResults struct {
	byUUID map[string]recentResult
	order  []string // ring of uuids, oldest at next
	next   int
	bytes  int // result and error bytes remembered
	limit  int
}

type recentResult struct {
	res   message.Result
	print uint64
}

func newRecentResults(capacity, bytes int) *recentResults {
	return &recentResults{byUUID: make(map[string]recentResult, capacity), order: make([]string, 0, capacity), limit: bytes}
}

func resultSize(res message.Result) int { return len(res.Result) + len(res.Error) }

// add remembers res; a result for a uuid already remembered replaces it (a
// task of the same uuid and another payload, which someone sent first).
// The oldest are forgotten while more than the byte bound is remembered.
func (r *recentResults) add(res message.Result, print uint64) {
	if old, ok := r.byUUID[res.UUID]; ok {
		r.bytes += resultSize(res) - resultSize(old.res)
		r.byUUID[res.UUID] = recentResult{res, print}
		r.trim()
		return
	}
	if len(r.order) < cap(r.order) {
		r.order = append(r.order, res.UUID)
	} else {
		r.forget(r.order[r.next])
		r.order[r.next] = res.UUID
		r.next = (r.next + 1) % len(r.order)
	}
	r.byUUID[res.UUID] = recentResult{res, print}
	r.bytes += resultSize(res)
	r.trim()
}

// trim forgets the oldest results while over the byte bound; their slots
// in the ring stay, empty, until reused.
func (r *recentResults) trim() {
	for i := 0; r.bytes > r.limit && i < len(r.order); i++ {
		r.forget(r.order[(r.next+i)%len(r.order)])
	}
}

func (r *recentResults) forget(id string) {
	if old, ok := r.byUUID[id]; ok {
		r.bytes -= resultSize(old.res)
		delete(r.byUUID, id)
	}
}

// get returns the result remembered for id and its task's fingerprint.
func (r *recentResults) get(id string) (message.Result, uint64, bool) {
	e, ok := r.byUUID[id]
	return e.res, e.print, ok
}
