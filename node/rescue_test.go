package node

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// idleMaster is a master with n pending tasks, none placed, and no worker:
// what a master holds when every worker is gone. Its leadership is lost, so
// every placement fails.
func idleMaster(t testing.TB, n int) *master {
	lead := &fakeLead{}
	lead.lost.Store(true)
	m := testMaster(t, func(c *masterConfig) { c.lead = lead })
	recs := make([]taskstore.Record, n)
	for i := range recs {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		recs[i] = taskstore.Record{UUID: id, Kind: message.KindTriple, Payload: json.RawMessage("1"), Number: 1, Term: 1, State: taskstore.Pending}
	}
	m.table.resume(recs, time.Now().Add(m.retention), time.Now().Add(m.failedRetention))
	return m
}

// BenchmarkRescueNoWorker is the master's periodic rescue pass with 30,000
// pending tasks and no worker: the cost it pays every second while idle.
//
//	go test -run '^$' -bench RescueNoWorker -benchtime 100x ./node/
func BenchmarkRescueNoWorker(b *testing.B) {
	m := idleMaster(b, 30000)
	now := time.Now()
	for b.Loop() {
		m.rescue(now)
		m.wg.Wait()
		now = now.Add(time.Second)
	}
}

// With no worker, a rescue pass places nothing: no goroutine, no
// allocation, however many tasks are pending.
func TestRescueWithoutWorkerPlacesNothing(t *testing.T) {
	m := idleMaster(t, 1000)
	now := time.Now()
	allocs := testing.AllocsPerRun(5, func() {
		m.rescue(now)
		m.wg.Wait()
		now = now.Add(time.Second)
	})
	if allocs != 0 {
		t.Fatalf("a rescue pass with no worker allocated %.0f times: it tries to place the tasks", allocs)
	}
}

// A task no worker took is placed again only after its back-off, and at
// once when the membership changes.
func TestUnplaceableTaskBacksOffUntilMembershipChanges(t *testing.T) {
	m := idleMaster(t, 1)
	var task *tracked
	for _, task = range m.table.tasks {
	}
	// A member that cannot take the task: this master does not lead, so
	// every placement fails.
	const w = "w-00000000"
	m.table.setWorkers(workers(w))
	pass := func(now time.Time) {
		m.rescue(now)
		m.wg.Wait()
	}
	now := time.Now()
	pass(now)
	if task.failures != 1 {
		t.Fatalf("failures %d after the first pass, want 1", task.failures)
	}
	for _, d := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond} {
		pass(now.Add(d))
	}
	if task.failures != 1 {
		t.Fatalf("failures %d within the back-off, want 1: placed again every pass", task.failures)
	}
	pass(time.Now().Add(2 * time.Second))
	if task.failures != 2 {
		t.Fatalf("failures %d after the back-off, want 2", task.failures)
	}
	task.failures, task.retryAt = 5, time.Now().Add(time.Hour)
	m.reassign(registry.Membership{Members: []registry.Record{{ID: w}}})
	m.wg.Wait()
	if task.failures != 1 {
		t.Fatalf("failures %d after a membership change, want 1: not placed at once", task.failures)
	}
}
