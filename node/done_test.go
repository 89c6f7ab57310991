package node

import (
	"fmt"
	"testing"
	"time"
)

func TestDoneIndexExpiresAndForgetsOldestBeyondMax(t *testing.T) {
	now := time.Unix(1000, 0)
	d := newDoneIndex(3)
	for i := range 5 {
		d.add(fmt.Sprint(i), nil, now.Add(time.Duration(i+1)*time.Minute))
	}
	if d.len() != 3 {
		t.Fatalf("len %d, want 3", d.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := d.get(fmt.Sprint(i)); ok != want {
			t.Fatalf("task %d known: %v, want %v", i, ok, want)
		}
	}
	// Task 1 was forgotten early and would have expired at +2m.
	if !d.mayHaveForgotten(now.Add(2*time.Minute - time.Second)) {
		t.Fatal("index does not say it may have forgotten a task still within its time")
	}
	if d.mayHaveForgotten(now.Add(2 * time.Minute)) {
		t.Fatal("index says it may have forgotten after every forgotten task's time ran out")
	}
	d.expire(now.Add(4 * time.Minute))
	if _, ok := d.get("3"); ok || d.len() != 1 {
		t.Fatalf("after expiry: len %d, task 3 still known: %v", d.len(), ok)
	}
	// The queue's space is reused: many adds and expiries keep it small.
	for i := range 10000 {
		until := now.Add(time.Hour + time.Duration(i)*time.Millisecond)
		d.add(fmt.Sprint("x", i), nil, until)
		d.expire(until.Add(-2 * time.Millisecond))
	}
	if len(d.order)-d.head > 10 || cap(d.order) > 4096 {
		t.Fatalf("queue holds %d entries (cap %d) for %d tasks", len(d.order)-d.head, cap(d.order), d.len())
	}
}
