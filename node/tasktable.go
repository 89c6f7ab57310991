package node

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
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
	timers timers     // the tasks waiting for a time: run_at, or a retry's backoff
	bytes  int64      // payload bytes of the tasks followed
	seq    uint64     // admission order, for waiting tasks of different kinds
	limits pendingLimits
	wake   chan struct{} // signalled when a slot may have freed, or a task waits for a time

	ephemeral int // the tasks followed of durability none, bound by limits.ephemeral

	// submitters counts the tasks followed per submitter, bound by
	// limits.perSubmitter; followLocked and unfollowLocked keep it.
	submitters *submitters

	finished map[string]map[taskstore.State]int64 // moves into done, failed, cancelled, retrying, per kind (countLocked)
	failures []failedAttempt                      // the latest failed attempts, oldest first
	seed     maphash.Seed                         // of the work fingerprints (workPrint)
}

// pendingLimits bound what the table follows: Config.MaxPending and
// MaxPendingBytes, and of those tasks the ones of durability none
// (Config.MaxEphemeral) and the ones of one submitter
// (Config.MaxPendingPerSubmitter). Zero means no bound (tests).
type pendingLimits struct {
	tasks        int
	bytes        int64
	ephemeral    int
	perSubmitter int
}

func newTaskTable(doneMax int, limits pendingLimits) *taskTable {
	return &taskTable{tasks: make(map[string]*tracked), done: newDoneIndex(doneMax), book: newLoadBook(),
		queues: make(waitQueues), limits: limits, finished: make(map[string]map[taskstore.State]int64),
		wake: make(chan struct{}, 1), seed: maphash.MakeSeed(), submitters: newSubmitters(limits.perSubmitter, slotsPerSubmitter)}
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
	if t.ephemeral {
		tt.ephemeral++
	}
	tt.submitters.follow(t.rec.Submitter)
}

// unfollowLocked removes t from the tasks followed, and its load.
func (tt *taskTable) unfollowLocked(t *tracked) {
	delete(tt.tasks, t.rec.UUID)
	tt.bytes -= int64(len(t.rec.Payload))
	if t.ephemeral {
		tt.ephemeral--
	}
	tt.submitters.unfollow(t.rec.Submitter)
	tt.queues.remove(t)
	tt.unscheduleLocked(t)
	tt.freeSlotLocked(t)
}

// len is the number of tasks followed.
func (tt *taskTable) len() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.tasks)
}

// resume takes in the records an earlier master wrote: live tasks are
// followed (a running one on its executor's load, as taken: its worker may
// have started it), final ones remembered until until (done) or
// failedUntil (failed, cancelled). It returns how many are live.
func (tt *taskTable) resume(recs []taskstore.Record, until, failedUntil time.Time) (live int) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, r := range recs {
		if r.State.Final() {
			keep := until
			if r.State != taskstore.Done {
				keep = failedUntil
			}
			tt.done.add(r.UUID, tt.workPrint(r.Kind, r.Payload), string(r.State), r.Result, false, keep)
			continue
		}
		t := &tracked{rec: r, accepted: true, print: tt.workPrint(r.Kind, r.Payload)}
		if r.State == taskstore.Running {
			t.slot, t.taken = r.Executor, true
			tt.book.move("", r.Executor)
		}
		tt.followLocked(t)
		live++
	}
	return live
}

// known is what the table knows of a submitted uuid.
type known int

const (
	unknown       known = iota // new: admit added it, claimed, as admission.t
	lookUp                     // the done index may have forgotten it: look in etcd, then admit again with lookedUp
	recording                  // its first submission's write is still under way
	pending                    // accepted, live (pending, running or retrying)
	done                       // recorded in a final state
	full                       // new, but the table holds its limit of tasks or bytes: refused, not added
	fullEphemeral              // new, of durability none, but the table holds its limit of those: refused, not added
	fullSubmitter              // new, but its submitter holds its limit of tasks: refused (refusal says why), not added
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
	state     string // pending, done: the task's state
	tasks     int    // full: the tasks the table holds; fullEphemeral: those of durability none
	bytes     int64  // full: their payload bytes
	refusal   string // fullSubmitter: the answer
}

// admit looks sub's uuid up, and when it is new, adds it as a task with
// record rec, claimed and, when a slot is free and its time has come,
// running on the least loaded worker; print is sub's work fingerprint
// (workPrint), made before the lock is taken. A known uuid is answered
// whoever submits it; a new one is refused when its submitter
// (rec.Submitter) holds its bound of tasks, or the table its own.
// Unless lookedUp, a durable uuid the done index may have forgotten is not
// added: the caller looks in etcd first.
func (tt *taskTable) admit(sub message.Submit, rec taskstore.Record, print uint64, now time.Time, lookedUp bool) admission {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t, ok := tt.tasks[sub.UUID]; ok {
		if !t.accepted {
			return admission{known: recording}
		}
		return admission{known: pending, print: t.print, ephemeral: t.ephemeral, term: t.rec.Term, t: t, state: string(t.rec.State)}
	}
	if d, ok := tt.done.get(sub.UUID); ok {
		if d.result == nil && !d.ephemeral && !lookedUp {
			return admission{known: lookUp} // its result was too large to keep here
		}
		return admission{known: done, print: d.print, ephemeral: d.ephemeral, result: d.Result(), state: d.state.String()}
	}
	if !lookedUp && !sub.Ephemeral() && tt.done.mayHaveForgotten(sub.UUID, now) {
		return admission{known: lookUp}
	}
	if refusal, full := tt.submitters.full(rec.Submitter); full {
		return admission{known: fullSubmitter, refusal: refusal}
	}
	if tt.limits.tasks > 0 && len(tt.tasks) >= tt.limits.tasks || tt.limits.bytes > 0 && tt.bytes+int64(len(sub.Payload)) > tt.limits.bytes {
		return admission{known: full, tasks: len(tt.tasks), bytes: tt.bytes}
	}
	if sub.Ephemeral() && tt.limits.ephemeral > 0 && tt.ephemeral >= tt.limits.ephemeral {
		return admission{known: fullEphemeral, tasks: tt.ephemeral}
	}
	return admission{known: unknown, t: tt.addLocked(rec, sub.Ephemeral(), print, now)}
}

// addLocked follows a new task of record rec, claimed and, when a slot is
// free and its time has come, running on the least loaded worker: unless
// tasks of its kind wait already, which go first. The table's lock is held.
func (tt *taskTable) addLocked(rec taskstore.Record, ephemeral bool, print uint64, now time.Time) *tracked {
	t := &tracked{busy: true, ephemeral: ephemeral, accepted: ephemeral, print: print, rec: rec}
	if !rec.NotBefore.After(now) && tt.queues[rec.Kind] == nil {
		t.slot = tt.book.pick(rec.Kind, "", nil)
		tt.book.move("", t.slot)
		if t.slot != "" {
			t.rec = startAttempt(t.rec, t.slot, now)
		}
	}
	tt.followLocked(t)
	return t
}

// errLive refuses to retry a task that is live.
var errLive = errors.New("the task is not failed or cancelled")

// readmit follows again a failed or cancelled task, of record rec made
// pending with fresh attempts (retry), as addLocked does a new one. It
// refuses when the task is live, or its submitter or the table is full.
func (tt *taskTable) readmit(rec taskstore.Record, now time.Time) (*tracked, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t, ok := tt.tasks[rec.UUID]; ok {
		return nil, fmt.Errorf("%w: it is %s", errLive, t.rec.State)
	}
	if refusal, full := tt.submitters.full(rec.Submitter); full {
		return nil, errors.New(refusal)
	}
	if tt.limits.tasks > 0 && len(tt.tasks) >= tt.limits.tasks || tt.limits.bytes > 0 && tt.bytes+int64(len(rec.Payload)) > tt.limits.bytes {
		return nil, fmt.Errorf("busy: the master holds %d tasks of %d payload bytes; try again later", len(tt.tasks), tt.bytes)
	}
	tt.done.remove(rec.UUID)
	return tt.addLocked(rec, false, tt.workPrint(rec.Kind, rec.Payload), now), nil
}

// lookup returns the live task id, or nil.
func (tt *taskTable) lookup(id string) *tracked {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.tasks[id]
}

// info is what the table knows of task id: a live task's record, or a
// final one's state and result from the done index (final true). ok is
// false when it knows nothing of id.
func (tt *taskTable) info(id string) (ti message.TaskInfo, final, ok bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t, ok := tt.tasks[id]; ok {
		return info(t.rec, t.ephemeral), false, true
	}
	if d, ok := tt.done.get(id); ok {
		return message.TaskInfo{UUID: id, State: d.state.String(), Durability: durability(d.ephemeral), Result: d.Result()}, true, true
	}
	return message.TaskInfo{}, false, false
}

// live lists the live tasks in state (any when "") of kind (any when ""),
// as a listing shows them.
func (tt *taskTable) live(state, kind string) []message.TaskInfo {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var out []message.TaskInfo
	for _, t := range tt.tasks {
		if (state == "" || string(t.rec.State) == state) && (kind == "" || t.rec.Kind == kind) {
			out = append(out, listed(info(t.rec, t.ephemeral)))
		}
	}
	return out
}

// kindStats is the table by kind, for /status and /metrics.
type kindStats struct {
	pending   map[string]int                       // tasks followed: live, in any state
	waiting   map[string]int                       // of those, waiting for a free slot
	states    map[string]map[taskstore.State]int   // of those, by state: pending, running, retrying
	finished  map[string]map[taskstore.State]int64 // tasks recorded done, failed, cancelled in this term
	unhandled []string                             // kinds of pending tasks no worker runs, sorted
}

// kinds counts the tasks by kind, in one pass under the lock: the counts
// are made when asked, not kept on every admission.
func (tt *taskTable) kinds() kindStats {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	k := kindStats{pending: make(map[string]int), waiting: make(map[string]int, len(tt.queues)),
		states: make(map[string]map[taskstore.State]int), finished: make(map[string]map[taskstore.State]int64, len(tt.finished))}
	for _, t := range tt.tasks {
		k.pending[t.rec.Kind]++
		m := k.states[t.rec.Kind]
		if m == nil {
			m = make(map[taskstore.State]int, 3)
			k.states[t.rec.Kind] = m
		}
		m[t.rec.State]++
	}
	for kind, q := range tt.queues {
		k.waiting[kind] = q.n
	}
	for kind, f := range tt.finished {
		k.finished[kind] = maps.Clone(f)
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
	tt.unscheduleLocked(t)
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
	t.busy = t.result != nil || t.lost != nil
	return t.busy
}

// current returns t's record as the claim's holder may send it, whether it
// was placed before, and whether its result has come in.
func (tt *taskTable) current(t *tracked) (rec taskstore.Record, placedBefore, hasResult bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	// Placed before: sent in this term, or taken under an earlier term's
	// (resumed running); a new task's first attempt, started at
	// admission, is not a placement yet.
	return t.rec, !t.sent.IsZero() || len(t.sentTo) > 0 || t.taken, t.result != nil
}

// moved records that t's placement moved to rec (another worker, another
// attempt, this term).
func (tt *taskTable) moved(t *tracked, rec taskstore.Record) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t.rec.Attempts != rec.Attempts {
		t.taken = false // a new attempt: nobody took it yet
	}
	t.rec = rec
}

// sending remembers that t is being sent to w as attempt.
func (tt *taskTable) sending(t *tracked, w string, attempt int) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t.addPlacementLocked(w, int64(attempt))
}

// sentAt records when t's worker took it.
func (tt *taskTable) sentAt(t *tracked, now time.Time) {
	tt.mu.Lock()
	t.sent, t.taken = now, true
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
		if p.timedOut && res.Error != "" && t.rec.State != taskstore.Running {
			return t, p, duplicate, "", false // the attempt's failure is recorded already
		}
		return t, p, refused, why, false
	}
	t.result = &res
	recordNow = !t.busy
	tt.claimLocked(t)
	tt.freeSlotLocked(t) // its worker is done with it
	return t, p, kept, "", recordNow
}

// toRecord returns t's record in its next state, for the claim's holder
// to write: done with its result, or after a failed attempt (the worker's
// error, or the master's lost) retrying or failed (afterFailure). res is
// the result it used, nil for lost.
func (tt *taskTable) toRecord(t *tracked, term int64, now time.Time, p lifePolicy) (rec taskstore.Record, res *message.Result) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	rec, res = t.rec, t.result
	rec.Term = term
	switch {
	case res != nil && res.Error == "":
		rec.State, rec.Result, rec.Finished, rec.NotBefore = taskstore.Done, res, now.UTC(), time.Time{}
	case res != nil:
		rec = afterFailure(rec, failure{executor: res.Executor, attempt: int(res.Attempt), err: res.Error, permanent: res.Permanent, result: res}, now, p, jitter)
	default:
		rec = afterFailure(rec, *t.lost, now, p, jitter)
	}
	return rec, res
}

// cancelled returns t's record as cancelled at now, for the claim's holder
// to write.
func (tt *taskTable) cancelled(t *tracked, term int64, now time.Time) taskstore.Record {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	rec := t.rec
	rec.State, rec.Term, rec.Finished, rec.NotBefore, rec.Result = taskstore.Cancelled, term, now.UTC(), time.Time{}, nil
	return rec
}

// settled ends a recording's claim on t, whose record rec was written (ok)
// or not. Written in a final state, t leaves the table for the done
// index, remembered until until; written as retrying, t waits for its
// backoff to end, its result (res) or lost attempt forgotten. Not written,
// t stays as it was, with its result, for the next rescue to record. sent
// is when its worker took it; recordNow says a result came in meanwhile:
// the caller records again.
func (tt *taskTable) settled(t *tracked, rec taskstore.Record, res *message.Result, ok bool, until, now time.Time) (sent time.Time, recordNow bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t.busy = false
	if !ok {
		// Not written: the task stands as it was. One that was waiting
		// (claimed by a cancel) waits again, for its time or a slot.
		if t.result == nil && t.lost == nil && t.rec.State != taskstore.Running {
			tt.parkLocked(t, now)
		}
		return time.Time{}, false
	}
	sent = t.sent
	if rec.State.Final() {
		tt.unfollowLocked(t)
		tt.done.add(t.rec.UUID, t.print, string(rec.State), rec.Result, t.ephemeral, until)
		tt.countLocked(rec)
		return sent, false
	}
	// Retrying: the attempt is over; another result for it is a duplicate.
	t.overLocked(int64(rec.Attempts))
	t.rec, t.lost, t.sent, t.taken, t.retryAt, t.failures = rec, nil, time.Time{}, false, time.Time{}, 0
	if t.result == res {
		t.result = nil
	}
	tt.freeSlotLocked(t)
	tt.countLocked(rec)
	if t.result != nil { // another result came in meanwhile
		t.busy = true
		return sent, true
	}
	tt.parkLocked(t, now)
	return sent, false
}

// expire forgets the done tasks whose time has run out by now.
func (tt *taskTable) expire(now time.Time) {
	tt.mu.Lock()
	tt.done.expire(now)
	tt.mu.Unlock()
}
