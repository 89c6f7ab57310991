package node

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/meshpool/meshpool/registry"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// taskTable is what a master knows of its tasks: the accepted ones it
// follows until their result is recorded (tasks), the recorded ones it
// remembers to answer re-submissions (done), and the load each worker
// carries (book). One lock guards all of it and every tracked task's fields.
//
// One operation at a time works on a task: a placement, a resending, or the
// recording of its result. It claims the task first (claimEach, claimIf, or
// admit for a new task) and releases it after (release, placed, finish).
// A result that comes in while the task is claimed is kept (resultIn), and
// whoever releases the claim records it. So a result is recorded once, and
// a placement can never write a task back as pending after its result was
// recorded.
//
// A task that finds no worker with a free slot for its kind waits, first
// in first out per kind (waiting), until a slot frees or a worker joins:
// then wake is signalled and the master takes the waiting tasks that can
// go (nextWaiting). A task counts on one worker's load (its slot) from
// the moment a placement picks the worker until its result comes in.
type taskTable struct {
	mu    sync.Mutex
	tasks map[string]*tracked // accepted, not yet recorded done, by uuid
	done  *doneIndex          // recorded done, kept for duplicate answers
	book  loadBook

	queues waitQueues // the tasks waiting for a free slot
	bytes  int64      // payload bytes of the tasks followed
	seq    uint64     // admission order, for waiting tasks of different kinds
	limits pendingLimits
	wake   chan struct{} // signalled when a slot may have freed
	seed   maphash.Seed  // of the work fingerprints (workPrint)
}

// pendingLimits bound what the table follows: Config.MaxPending and
// MaxPendingBytes. Zero means no bound (tests).
type pendingLimits struct {
	tasks int
	bytes int64
}

func newTaskTable(doneMax int, limits pendingLimits) *taskTable {
	return &taskTable{tasks: make(map[string]*tracked), done: newDoneIndex(doneMax), book: newLoadBook(),
		queues: make(waitQueues), limits: limits,
		wake: make(chan struct{}, 1), seed: maphash.MakeSeed()}
}

// setWorkers replaces the workers tasks may be placed on.
func (tt *taskTable) setWorkers(workers []registry.Record) {
	tt.mu.Lock()
	tt.book.workers = workers
	tt.mu.Unlock()
	tt.signal()
}

// handled reports whether any worker runs kind.
func (tt *taskTable) handled(kind string) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.book.handled(kind)
}

func (tt *taskTable) hasWorkers() bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.book.workers) > 0
}

// workPrint is a fingerprint of a task's kind and payload, to tell a
// re-submission from another request under the same uuid.
func (tt *taskTable) workPrint(kind string, payload []byte) uint64 {
	return workPrint(tt.seed, kind, payload)
}

// workPrint hashes a kind and a payload together.
func workPrint(seed maphash.Seed, kind string, payload []byte) uint64 {
	return maphash.String(seed, kind)*0x9e3779b97f4a7c15 ^ maphash.Bytes(seed, payload)
}

// followLocked adds t to the tasks followed.
func (tt *taskTable) followLocked(t *tracked) {
	tt.seq++
	t.seq = tt.seq
	tt.tasks[t.rec.UUID] = t
	tt.bytes += int64(len(t.rec.Payload))
}

// unfollowLocked removes t from the tasks followed, and its load.
func (tt *taskTable) unfollowLocked(t *tracked) {
	delete(tt.tasks, t.rec.UUID)
	tt.bytes -= int64(len(t.rec.Payload))
	tt.queues.remove(t)
	tt.freeSlotLocked(t)
}

// len is the number of tasks followed.
func (tt *taskTable) len() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.tasks)
}

// resume takes in the records an earlier master wrote: pending tasks are
// followed (on their executor's load), done ones remembered until until.
// It returns how many are pending.
func (tt *taskTable) resume(recs []taskstore.Record, until time.Time) (pending int) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, r := range recs {
		switch r.State {
		case taskstore.Pending:
			t := &tracked{rec: r, accepted: true, slot: r.Executor, print: tt.workPrint(r.Kind, r.Payload)}
			tt.followLocked(t)
			tt.book.move("", r.Executor)
			pending++
		case taskstore.Done:
			tt.done.add(r.UUID, tt.workPrint(r.Kind, r.Payload), r.Result, false, until)
		}
	}
	return pending
}

// known is what the table knows of a submitted uuid.
type known int

const (
	unknown   known = iota // new: admit added it, claimed, as admission.t
	lookUp                 // the done index may have forgotten it: look in etcd, then admit again with lookedUp
	recording              // its first submission's write is still under way
	pending                // accepted, not done yet
	done                   // recorded done
	full                   // new, but the table holds its limit of tasks or bytes: refused, not added
)

// admission is what admit found, and for a known uuid what its answer
// needs: the fingerprint of the task's kind and payload and its durability
// (to spot a conflict), and its term (pending) or result (done); for a
// table that is full, what it holds.
type admission struct {
	known     known
	t         *tracked // the new task (unknown) or the pending one
	print     uint64
	ephemeral bool
	term      int64
	result    *message.Result
	tasks     int   // full: the tasks the table holds
	bytes     int64 // full: their payload bytes
}

// admit looks sub's uuid up, and when it is new, adds it as a task under
// term, claimed and placed on the least loaded worker's load; print is
// sub's work fingerprint (workPrint), made before the lock is taken.
// Unless lookedUp, a durable uuid the done index may have forgotten is not
// added: the caller looks in etcd first.
func (tt *taskTable) admit(sub message.Submit, print uint64, term int64, now time.Time, lookedUp bool) admission {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t, ok := tt.tasks[sub.UUID]; ok {
		if !t.accepted {
			return admission{known: recording}
		}
		return admission{known: pending, print: t.print, ephemeral: t.ephemeral, term: t.rec.Term, t: t}
	}
	if d, ok := tt.done.get(sub.UUID); ok {
		if d.result == nil && !d.ephemeral && !lookedUp {
			return admission{known: lookUp} // its result was too large to keep here
		}
		return admission{known: done, print: d.print, ephemeral: d.ephemeral, result: d.result}
	}
	if !lookedUp && !sub.Ephemeral() && tt.done.mayHaveForgotten(sub.UUID, now) {
		return admission{known: lookUp}
	}
	if tt.limits.tasks > 0 && len(tt.tasks) >= tt.limits.tasks || tt.limits.bytes > 0 && tt.bytes+int64(len(sub.Payload)) > tt.limits.bytes {
		return admission{known: full, tasks: len(tt.tasks), bytes: tt.bytes}
	}
	t := &tracked{busy: true, ephemeral: sub.Ephemeral(), accepted: sub.Ephemeral(), print: print, rec: taskstore.Record{
		UUID: sub.UUID, Kind: sub.Kind, Payload: sub.Payload, Number: sub.Number, Term: term,
		State: taskstore.Pending, Submitted: now.UTC(),
	}}
	t.slot = tt.book.pick(sub.Kind, "", nil)
	tt.book.move("", t.slot)
	t.rec.Executor = t.slot
	tt.followLocked(t)
	return admission{known: unknown, t: t}
}

// kindStats is the table by kind, for /status and /metrics.
type kindStats struct {
	pending   map[string]int // tasks followed
	waiting   map[string]int // of those, waiting for a free slot
	unhandled []string       // kinds of pending tasks no worker runs, sorted
}

// kinds counts the tasks by kind, in one pass under the lock: the counts
// are made when asked, not kept on every admission.
func (tt *taskTable) kinds() kindStats {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	k := kindStats{pending: make(map[string]int), waiting: make(map[string]int, len(tt.queues))}
	for _, t := range tt.tasks {
		k.pending[t.rec.Kind]++
	}
	for kind, l := range tt.queues {
		k.waiting[kind] = l.Len()
	}
	for kind := range k.pending {
		if !tt.book.handled(kind) {
			k.unhandled = append(k.unhandled, kind)
		}
	}
	slices.Sort(k.unhandled)
	return k
}

// accepted marks a new task's record written.
func (tt *taskTable) accepted(t *tracked) {
	tt.mu.Lock()
	t.accepted = true
	tt.mu.Unlock()
}

// drop forgets a new task whose record could not be written.
func (tt *taskTable) drop(t *tracked) {
	tt.mu.Lock()
	tt.unfollowLocked(t)
	tt.mu.Unlock()
}

// claimEach calls want, under the lock, for every task not claimed; it
// claims those for which want returns true. want may change the task's
// fields, but not busy.
func (tt *taskTable) claimEach(want func(t *tracked) bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, t := range tt.tasks {
		if !t.busy && want(t) {
			tt.claimLocked(t)
		}
	}
}

// claimLocked claims t, which nobody holds: a claimed task is out of the
// waiting queue, whoever placed, resent or recorded it meanwhile. The
// table's lock is held.
func (tt *taskTable) claimLocked(t *tracked) {
	t.busy = true
	tt.queues.remove(t)
}

// claimIf claims t when it is not claimed and want, called under the lock,
// returns true.
func (tt *taskTable) claimIf(t *tracked, want func(t *tracked) bool) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t.busy || !want(t) {
		return false
	}
	tt.claimLocked(t)
	return true
}

// release ends the caller's claim on t. When t's result came in meanwhile,
// t stays claimed and release returns true: the caller records it now.
func (tt *taskTable) release(t *tracked) (recordNow bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.releaseLocked(t)
}

func (tt *taskTable) releaseLocked(t *tracked) bool {
	t.busy = t.result != nil
	return t.busy
}

// current returns t's record as the claim's holder may send it, whether it
// was placed before, and whether its result has come in.
func (tt *taskTable) current(t *tracked) (rec taskstore.Record, placedBefore, hasResult bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return t.rec, !t.sent.IsZero() || t.rec.Attempts > 0, t.result != nil
}

// moved records that t's placement moved to worker w under term.
func (tt *taskTable) moved(t *tracked, w string, term int64) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t.rec.Executor, t.rec.Term = w, term
}

// sending remembers that t is being sent to w as attempt.
func (tt *taskTable) sending(t *tracked, w string, attempt int) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t.rec.Attempts = attempt
	t.addPlacementLocked(w, int64(attempt))
}

// sentAt records when t's worker took it.
func (tt *taskTable) sentAt(t *tracked, now time.Time) {
	tt.mu.Lock()
	t.sent = now
	tt.mu.Unlock()
}

// taken says what resultIn did with a result.
type taken int

const (
	kept      taken = iota // the task's first valid result: recorded now (recordNow) or by its claim's holder
	refused                // not from a sending of the task, or wrong: why says which
	duplicate              // the task's result came already, or the task is recorded done
	untracked              // no task of this master has its uuid
)

// resultIn takes res in: the first result of a pending task that answers
// one of its sendings under term (see checkResult) is kept, and when the
// task is not claimed it is claimed for the caller to record (recordNow).
func (tt *taskTable) resultIn(res message.Result, term int64) (t *tracked, p placement, what taken, why string, recordNow bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t, ok := tt.tasks[res.UUID]
	switch {
	case !ok:
		if _, ok := tt.done.get(res.UUID); ok {
			return nil, p, duplicate, "", false
		}
		return nil, p, untracked, "", false
	case t.result != nil:
		return t, p, duplicate, "", false
	}
	if p, why = checkResult(t, res, term); why != "" {
		return t, p, refused, why, false
	}
	t.result = &res
	recordNow = !t.busy
	tt.claimLocked(t)
	tt.freeSlotLocked(t) // its worker is done with it
	return t, p, kept, "", recordNow
}

// toRecord returns t's record as done with its result under term, for the
// claim's holder to write.
func (tt *taskTable) toRecord(t *tracked, term int64) taskstore.Record {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	rec := t.rec
	rec.State, rec.Result, rec.Term = taskstore.Done, t.result, term
	return rec
}

// finish ends a recording's claim on t. When the write succeeded (ok), t
// leaves the table for the done index, remembered until until, and its
// worker's load is released; sent is when its worker took it. Otherwise t
// stays pending with its result, for the next rescue to record.
func (tt *taskTable) finish(t *tracked, ok bool, until time.Time) (sent time.Time) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t.busy = false
	if !ok {
		return time.Time{}
	}
	tt.unfollowLocked(t)
	tt.done.add(t.rec.UUID, t.print, t.result, t.ephemeral, until)
	return t.sent
}

// expire forgets the done tasks whose time has run out by now.
func (tt *taskTable) expire(now time.Time) {
	tt.mu.Lock()
	tt.done.expire(now)
	tt.mu.Unlock()
}
