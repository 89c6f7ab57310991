package node

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

func TestDoneIndexExpiresAndForgetsOldestBeyondMax(t *testing.T) {
	now := time.Unix(1000, 0)
	d := newDoneIndex(3)
	for i := range 5 {
		d.add(id(i), 0, "done", nil, false, now.Add(time.Duration(i+1)*time.Minute))
	}
	if d.len() != 3 {
		t.Fatalf("len %d, want 3", d.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := d.get(id(i)); ok != want {
			t.Fatalf("task %d known: %v, want %v", i, ok, want)
		}
	}
	// Tasks 0 and 1 were forgotten early; 1 would have expired at +2m.
	if !d.mayHaveForgotten(id(1), now.Add(2*time.Minute-time.Second)) || !d.mayHaveForgotten(id(0), now) {
		t.Fatal("index does not say it may have forgotten a task still within its time")
	}
	if d.mayHaveForgotten(id(1), now.Add(2*time.Minute)) {
		t.Fatal("index says it may have forgotten after every forgotten task's time ran out")
	}
	d.expire(now.Add(4 * time.Minute))
	if _, ok := d.get(id(3)); ok || d.len() != 1 {
		t.Fatalf("after expiry: len %d, task 3 still known: %v", d.len(), ok)
	}
	// The queue's space is reused: many adds and expiries keep it small.
	for i := range 10000 {
		until := now.Add(time.Hour + time.Duration(i)*time.Millisecond)
		d.add(id(1000+i), 0, "done", nil, false, until)
		d.expire(until.Add(-2 * time.Millisecond))
	}
	if len(d.order)-d.head > 10 || cap(d.order) > 4096 {
		t.Fatalf("queue holds %d entries (cap %d) for %d tasks", len(d.order)-d.head, cap(d.order), d.len())
	}
}

func TestForgottenHasNoFalseNegativesAndFewFalsePositives(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newForgotten()
	const n = bloomCapacity + 1000 // two generations
	for i := range n {
		f.add(fmt.Sprint("in-", i), now.Add(time.Duration(1+i/bloomCapacity)*time.Minute))
	}
	for i := range n {
		if !f.mayContain(fmt.Sprint("in-", i), now) {
			t.Fatalf("uuid %d added and not expired, not found", i)
		}
	}
	positives := 0
	for i := range 100_000 {
		if f.mayContain(fmt.Sprint("out-", i), now) {
			positives++
		}
	}
	if rate := float64(positives) / 100_000; rate > 0.02 {
		t.Fatalf("false positive rate %.3f, want about 0.01", rate)
	}
	// The first generation expires at +1m, the second at +2m.
	f.mayContain("x", now.Add(time.Minute))
	if len(f.gens) != 1 {
		t.Fatalf("%d generations after the first expired, want 1", len(f.gens))
	}
	if f.mayContain(fmt.Sprint("in-", n-1), now.Add(2*time.Minute)) || len(f.gens) != 0 {
		t.Fatal("a uuid is still found after every generation expired")
	}
}

// A large result is kept in memory only for a task of durability none,
// which has no other copy; a durable task's is read from etcd.
func TestDoneIndexKeepsLargeResultsOnlyWithoutACopy(t *testing.T) {
	d := newDoneIndex(10)
	now := message.NewTimestamp(time.Now())
	large := &message.Result{UUID: id(1), Executor: "w", Kind: "k", Result: json.RawMessage(`"` + strings.Repeat("x", maxDoneResult) + `"`),
		Start: now, Finish: now, Term: 1, Attempt: 1}
	until := time.Now().Add(time.Hour)
	d.add(id(1), 0, "done", large, false, until)
	d.add(id(2), 0, "done", large, true, until)
	d.add(id(3), 0, "failed", nil, false, until)
	if got, _ := d.get(id(1)); got.Result() != nil {
		t.Error("a durable task's large result kept in memory")
	}
	if got, _ := d.get(id(2)); got.Result() == nil || string(got.Result().Result) != string(large.Result) || got.state.String() != "done" {
		t.Error("a large result of durability none not kept: nothing else has it")
	}
	if got, ok := d.get(id(3)); !ok || got.Result() != nil || got.state.String() != "failed" {
		t.Errorf("a failed task without a result: %+v, %v", got, ok)
	}
	if _, ok := d.get("not-a-uuid"); ok {
		t.Error("an id that is not a uuid found")
	}
}

// The results' chunks are freed as the tasks expire or are forgotten, and
// the results of the tasks held read back whole.
func TestDoneIndexFreesTheResultsOfTasksGone(t *testing.T) {
	d := newDoneIndex(5000)
	now := time.Unix(1000, 0)
	ts := message.NewTimestamp(now)
	result := func(i int) *message.Result {
		return &message.Result{UUID: id(i), Executor: "w", Kind: "k", Result: json.RawMessage(fmt.Sprintf(`"%0900d"`, i)), Start: ts, Finish: ts, Term: 1, Attempt: 1}
	}
	for i := range 50_000 {
		d.add(id(i), 0, "done", result(i), false, now.Add(time.Duration(i)*time.Millisecond+time.Minute))
		if i%1000 == 999 {
			d.expire(now.Add(time.Duration(i-2000) * time.Millisecond).Add(time.Minute))
		}
	}
	// 2,000 to 5,000 tasks of about 1 KiB held: a few chunks of 1 MiB.
	if n := len(d.results.chunks); n > 8 {
		t.Errorf("%d chunks of results held for %d tasks", n, d.len())
	}
	held := 0
	for i := range 50_000 {
		got, ok := d.get(id(i))
		if !ok {
			continue
		}
		held++
		if r := got.Result(); r == nil || string(r.Result) != string(result(i).Result) {
			t.Fatalf("task %d: %+v", i, r)
		}
	}
	if held != d.len() || held < 2000 {
		t.Errorf("%d tasks read back, %d held", held, d.len())
	}
	if _, ok := d.get(id(1000)); ok {
		t.Error("an expired task still held")
	}
}

// id is the i-th test uuid.
func id(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// BenchmarkDoneIndexGC measures a garbage collection with a full done
// index, which the master pays for every cycle.
func BenchmarkDoneIndexGC(b *testing.B) {
	d := newDoneIndex(200_000)
	now := message.NewTimestamp(time.Now())
	for i := range 200_000 {
		r := &message.Result{UUID: id(i), Executor: "b-0123abcd", Kind: "triple", Result: json.RawMessage("126"), Start: now, Finish: now, Term: 1, Attempt: 1}
		d.add(r.UUID, 0, "done", r, false, time.Now().Add(time.Hour))
	}
	b.ResetTimer()
	for range b.N {
		runtime.GC()
	}
	runtime.KeepAlive(d)
}
