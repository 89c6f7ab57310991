package testutil

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// ending the test, so the kit's own failures can be checked.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()           {}
func (r *recorder) Error(args ...any) { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	start, n := time.Now(), 0
	r := &recorder{TB: t}
	Eventually(r, time.Second, "three polls", func() bool { n++; return n == 3 })
	if r.failed != "" || n != 3 {
		t.Fatalf("condition that holds on the third poll: failed %q after %d polls", r.failed, n)
	}
	Eventually(r, 50*time.Millisecond, "never", func() bool { return false })
	if !strings.Contains(r.failed, "still waiting for: never") {
		t.Fatalf("condition that never holds: failed %q", r.failed)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("gave up before its timeout")
	}
}

func TestConsistently(t *testing.T) {
	r := &recorder{TB: t}
	n := 0
	Consistently(r, 50*time.Millisecond, "always", func() bool { n++; return true })
	if r.failed != "" || n < 2 {
		t.Fatalf("condition that always holds: failed %q after %d polls", r.failed, n)
	}
	ConsistentlyNil(r, time.Second, func() error { return fmt.Errorf("broken") })
	if !strings.Contains(r.failed, "broken") {
		t.Fatalf("condition that fails: failed %q", r.failed)
	}
}

func TestWithin(t *testing.T) {
	n := 0
	if !Within(time.Second, func() bool { n++; return n == 2 }) {
		t.Fatal("a condition that holds on the second poll: not within a second")
	}
	if Within(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds: within")
	}
}
