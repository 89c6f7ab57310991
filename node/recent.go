package node

import "github.com/meshpool/meshpool/message"

// recentCapacity bounds the results a worker remembers for redeliveries.
const recentCapacity = 16384

// recentResults remembers the last results a worker produced, oldest
// forgotten first. Not safe for concurrent use.
type recentResults struct {
	byUUID map[string]message.Result
	order  []string // ring of uuids, oldest at next
	next   int
}

func newRecentResults(capacity int) *recentResults {
	return &recentResults{byUUID: make(map[string]message.Result, capacity), order: make([]string, 0, capacity)}
}

// add remembers res; a result for a uuid already remembered replaces it (a
// task of the same uuid and another number, which someone sent first).
func (r *recentResults) add(res message.Result) {
	if _, ok := r.byUUID[res.UUID]; ok {
		r.byUUID[res.UUID] = res
		return
	}
	if len(r.order) < cap(r.order) {
		r.order = append(r.order, res.UUID)
	} else {
		delete(r.byUUID, r.order[r.next])
		r.order[r.next] = res.UUID
		r.next = (r.next + 1) % len(r.order)
	}
	r.byUUID[res.UUID] = res
}

func (r *recentResults) get(id string) (message.Result, bool) {
	res, ok := r.byUUID[id]
	return res, ok
}
