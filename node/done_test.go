package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

func TestDoneIndexExpiresAndForgetsOldestBeyondMax(t *testing.T) {
	now := time.Unix(1000, 0)
	d := newDoneIndex(3)
	for i := range 5 {
		d.add(fmt.Sprint(i), 0, "done", nil, false, now.Add(time.Duration(i+1)*time.Minute))
	}
	if d.len() != 3 {
		t.Fatalf("len %d, want 3", d.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := d.get(fmt.Sprint(i)); ok != want {
			t.Fatalf("task %d known: %v, want %v", i, ok, want)
		}
	}
	// Tasks 0 and 1 were forgotten early; 1 would have expired at +2m.
	if !d.mayHaveForgotten("1", now.Add(2*time.Minute-time.Second)) || !d.mayHaveForgotten("0", now) {
		t.Fatal("index does not say it may have forgotten a task still within its time")
	}
	if d.mayHaveForgotten("1", now.Add(2*time.Minute)) {
		t.Fatal("index says it may have forgotten after every forgotten task's time ran out")
	}
	d.expire(now.Add(4 * time.Minute))
	if _, ok := d.get("3"); ok || d.len() != 1 {
		t.Fatalf("after expiry: len %d, task 3 still known: %v", d.len(), ok)
	}
	// The queue's space is reused: many adds and expiries keep it small.
	for i := range 10000 {
		until := now.Add(time.Hour + time.Duration(i)*time.Millisecond)
		d.add(fmt.Sprint("x", i), 0, "done", nil, false, until)
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
	large := &message.Result{Result: json.RawMessage(`"` + strings.Repeat("x", maxDoneResult) + `"`)}
	until := time.Now().Add(time.Hour)
	d.add("durable", 0, "done", large, false, until)
	d.add("none", 0, "done", large, true, until)
	if got, _ := d.get("durable"); got.result != nil {
		t.Error("a durable task's large result kept in memory")
	}
	if got, _ := d.get("none"); got.result != large {
		t.Error("a large result of durability none not kept: nothing else has it")
	}
}
