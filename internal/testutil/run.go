package testutil

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// stopWait is how long Stop waits for a run to return once its context ended.
const stopWait = 10 * time.Second

// Running is a function Go runs in the background.
type Running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // what run returned, once done is closed

	once     sync.Once
	took     time.Duration
	stopErr  error
	answered bool // the first stop's error went to a caller, not to the test's cleanup
}

// Go runs run in a goroutine, with a context that ends at Stop or at the
// end of the test; the test then fails if run returned an error or did not
// return within 10 s. It is the shape of every component's Run(ctx) error.
func Go(t testing.TB, run func(ctx context.Context) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	t.Cleanup(func() {
		// A caller that stopped run has had its answer: say it once.
		if err := r.stop(stopWait, false); err != nil && !r.answered {
			t.Error(err)
		}
	})
	return r
}

// Stop ends run's context and waits for it to return. It returns run's
// error, or one saying run did not return within 10 s. Later calls return
// the first one's answer.
func (r *Running) Stop() error { return r.StopWithin(stopWait) }

// StopWithin is Stop waiting up to wait instead of 10 s, for a run that
// takes longer to wind down (a whole node). Only the first Stop or
// StopWithin waits; later calls return its answer.
func (r *Running) StopWithin(wait time.Duration) error { return r.stop(wait, true) }

func (r *Running) stop(wait time.Duration, caller bool) error {
	r.once.Do(func() {
		r.answered = caller
		start := time.Now()
		r.cancel()
		select {
		case <-r.done:
			r.took = time.Since(start)
			if r.err != nil {
				r.stopErr = fmt.Errorf("Run returned %w", r.err)
			}
		case <-time.After(wait):
			r.took, r.stopErr = time.Since(start), fmt.Errorf("Run did not return %s after its context ended", wait)
		}
	})
	return r.stopErr
}

// Took is how long the first Stop waited for run to return; 0 before it.
func (r *Running) Took() time.Duration { return r.took }

// Done is closed when run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }
