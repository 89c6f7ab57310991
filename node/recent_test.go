package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/message"
)

// The worker's memory of results forgets the oldest first, by count and
// by bytes; a uuid remembered again is kept as its latest add, and adds of
// the same uuid over and over keep the memory bounded.
func TestRecentResultsForgetOldestFirst(t *testing.T) {
	res := func(i, size int) message.Result {
		return message.Result{UUID: fmt.Sprint("u", i), Result: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
	}
	r := newRecentResults(3, 1000)
	for i := range 5 {
		r.add(res(i, 1), 0)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, _, ok := r.get(fmt.Sprint("u", i)); ok != want {
			t.Fatalf("u%d remembered %v, want %v", i, ok, want)
		}
	}
	// u2, the oldest, is added again: u3 goes first now.
	r.add(res(2, 1), 7)
	r.add(res(5, 1), 0)
	if _, print, ok := r.get("u2"); !ok || print != 7 {
		t.Fatalf("u2 added again was forgotten (%v) or kept its old print (%d)", ok, print)
	}
	if _, _, ok := r.get("u3"); ok {
		t.Fatal("u3, now the oldest, is still remembered")
	}
	// A result larger than the rest together pushes out the others.
	r.add(res(6, 998), 0)
	if _, _, ok := r.get("u6"); !ok || len(r.byUUID) != 1 || r.bytes != 1000 {
		t.Fatalf("after a large result: %d remembered, %d bytes", len(r.byUUID), r.bytes)
	}
	for range 10000 {
		r.add(res(6, 1), 0)
	}
	if len(r.order)-r.head > 2*r.capacity+64+1 || len(r.byUUID) != 1 {
		t.Fatalf("one uuid added 10,000 times: %d entries kept for %d results", len(r.order)-r.head, len(r.byUUID))
	}
}
