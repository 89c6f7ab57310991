package testutil

import (
	"testing"
	"time"
)

// poll is how often Eventually and Consistently ask their condition.
const poll = 20 * time.Millisecond

// Eventually polls cond until it holds, and fails the test saying what it
// waited for once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, timeout, func() error {
		if cond() {
			return nil
		}
		return waitingFor(what)
	})
}

// EventuallyNil polls cond until it returns nil, and fails the test with
// cond's last error once timeout has passed: for a condition whose reason
// for not holding yet is worth reading.
func EventuallyNil(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	var err error
	if !Within(timeout, func() bool { err = cond(); return err == nil }) {
		t.Fatalf("not within %s: %v", timeout, err)
	}
}

// Within polls cond until it holds, for at most d, and reports whether it
// did: for a caller that says more than Eventually would when it does not.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
	return true
}

// Consistently polls cond for the whole of d and fails the test as soon as
// it does not hold. It proves an absence, so it watches the window out.
func Consistently(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ConsistentlyNil(t, d, func() error {
		if cond() {
			return nil
		}
		return notAlways(what)
	})
}

// ConsistentlyNil polls cond for the whole of d and fails the test with its
// error as soon as it returns one.
func ConsistentlyNil(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("within %s: %v", d, err)
			return
		}
		time.Sleep(poll)
	}
}

type waitingFor string

func (w waitingFor) Error() string { return "still waiting for: " + string(w) }

type notAlways string

func (n notAlways) Error() string { return "no longer true: " + string(n) }
