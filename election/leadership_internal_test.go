package election

import (
	"testing"
	"time"
)

// A leadership that has ended stays invalid: a keep-alive acknowledged
// after the end does not make it valid again.
func TestEndedLeadershipStaysInvalid(t *testing.T) {
	l := newLeadership(7, "k")
	if l.Valid() {
		t.Fatal("valid before its first deadline")
	}
	l.deadline.Store(time.Now().Add(time.Minute).UnixNano())
	if !l.extend(time.Now().Add(2*time.Minute)) || !l.Valid() {
		t.Fatal("a live leadership not extended")
	}
	l.deadline.Store(0) // ended
	if l.extend(time.Now().Add(time.Minute)) || l.Valid() {
		t.Fatal("an ended leadership made valid again")
	}
}
