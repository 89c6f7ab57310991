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
	byUUID   map[string]recentResult
	order    []recentEntry // adds, oldest first from head; an entry whose uuid was added again since is stale
	head     int
	seq      uint64
	bytes    int // result and error bytes remembered
	capacity int
	limit    int
}

type recentResult struct {
	res   message.Result
	print uint64
	seq   uint64 // of the add that remembered it
}

type recentEntry struct {
	uuid string
	seq  uint64
}

func newRecentResults(capacity, bytes int) *recentResults {
	return &recentResults{byUUID: make(map[string]recentResult, capacity), capacity: capacity, limit: bytes}
}

func resultSize(res message.Result) int { return len(res.Result) + len(res.Error) }

// add remembers res; a result for a uuid already remembered replaces it (a
// task of the same uuid and another payload, which someone sent first).
// The oldest are forgotten while more than capacity or the byte bound are
// remembered. Each add costs O(1), amortised.
func (r *recentResults) add(res message.Result, print uint64) {
	if old, ok := r.byUUID[res.UUID]; ok {
		r.bytes -= resultSize(old.res)
	}
	r.seq++
	r.byUUID[res.UUID] = recentResult{res, print, r.seq}
	r.order = append(r.order, recentEntry{res.UUID, r.seq})
	r.bytes += resultSize(res)
	for (len(r.byUUID) > r.capacity || r.bytes > r.limit) && r.head < len(r.order) {
		e := r.order[r.head]
		r.order[r.head] = recentEntry{}
		r.head++
		if cur, ok := r.byUUID[e.uuid]; ok && cur.seq == e.seq {
			r.bytes -= resultSize(cur.res)
			delete(r.byUUID, e.uuid)
		}
	}
	if live := len(r.order) - r.head; live > 2*r.capacity+64 { // mostly stale: uuids added again
		kept := r.order[:0]
		for _, e := range r.order[r.head:] {
			if cur, ok := r.byUUID[e.uuid]; ok && cur.seq == e.seq {
				kept = append(kept, e)
			}
		}
		clear(r.order[len(kept):])
		r.order, r.head = kept, 0
	} else if r.head > 1024 && r.head > len(r.order)/2 { // reuse the space
		r.order = append(r.order[:0], r.order[r.head:]...)
		r.head = 0
	}
}

// get returns the result remembered for id and its task's fingerprint.
func (r *recentResults) get(id string) (message.Result, uint64, bool) {
	e, ok := r.byUUID[id]
	return e.res, e.print, ok
}
