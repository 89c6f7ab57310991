package testutil

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGo(t *testing.T) {
	r := &recorder{TB: t}
	ran := Go(r, func(ctx context.Context) error { <-ctx.Done(); return nil })
	if err := ran.Stop(); err != nil || ran.Took() > time.Second {
		t.Fatalf("a run that ends with its context: Stop = %v after %s", err, ran.Took())
	}
	if err := ran.Stop(); err != nil {
		t.Fatalf("Stop again: %v", err)
	}
	select {
	case <-ran.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}

	failing := Go(r, func(ctx context.Context) error { <-ctx.Done(); return errors.New("broken") })
	if err := failing.Stop(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a run that returns an error: Stop = %v", err)
	}
}

func TestStopWithinTimesOut(t *testing.T) {
	r := &recorder{TB: t}
	release := make(chan struct{})
	slow := Go(r, func(ctx context.Context) error { <-release; return nil })
	if err := slow.StopWithin(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not return 50ms") {
		t.Fatalf("a run that outlives its context: StopWithin = %v", err)
	}
	close(release)
	<-slow.Done()
}

// An error a caller's Stop returned is the caller's to report; the test's
// cleanup reports only what nobody was told.
func TestStopErrorIsReportedOnce(t *testing.T) {
	broken := func(ctx context.Context) error { <-ctx.Done(); return errors.New("broken") }
	told := &recorder{}
	t.Run("stopped by the test", func(t *testing.T) {
		told.TB = t
		_ = Go(told, broken).Stop()
	})
	if told.failed != "" {
		t.Fatalf("the cleanup reported the error the caller had: %q", told.failed)
	}
	untold := &recorder{}
	t.Run("left to the cleanup", func(t *testing.T) {
		untold.TB = t
		Go(untold, broken)
	})
	if !strings.Contains(untold.failed, "broken") {
		t.Fatalf("the cleanup did not report the error: %q", untold.failed)
	}
}
