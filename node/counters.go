package node

import "sync/atomic"

// masterStats are the master's counters; they outlive one term.
type masterStats struct {
	accepted       atomic.Int64 // tasks recorded and acknowledged to the submitter
	duplicates     atomic.Int64 // submissions of a known uuid, not run again
	conflicts      atomic.Int64 // submissions of a known uuid with another request, refused
	refused        atomic.Int64 // submissions refused (invalid, not recorded)
	badReplies     atomic.Int64 // submissions dropped unanswered: their reply subject is one of ours
	dispatched     atomic.Int64 // tasks acked by a worker (first placement or again)
	redispatched   atomic.Int64 // placements after the first: worker left, timed out, resumed
	resent         atomic.Int64 // tasks sent again to their worker when their submitter asked after them
	completed      atomic.Int64 // results recorded
	dupResults     atomic.Int64 // results for tasks already recorded, suppressed
	badResults     atomic.Int64 // malformed results refused
	refusedResults atomic.Int64 // well-formed results refused: not from a placement of a pending task, or wrong
	lateResults    atomic.Int64 // results recorded from a worker whose placement had timed out
	skipped        atomic.Int64 // demo ticks skipped for lack of workers
	inFlight       atomic.Int64 // tasks accepted and not yet recorded done
	recordFailures atomic.Int64 // etcd writes that failed (not fenced)
}
