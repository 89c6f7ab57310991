package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// concurrency is a handler of kind that naps and counts how many of its
// calls run at once, the most ever seen in max.
type concurrency struct{ now, max atomic.Int64 }

func (c *concurrency) mux(kinds ...string) *meshpool.Mux {
	mux := meshpool.NewMux()
	for _, kind := range kinds {
		mux.HandleFunc(kind, func(ctx context.Context, task *meshpool.Task) (json.RawMessage, error) {
			n := c.now.Add(1)
			defer c.now.Add(-1)
			for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return json.RawMessage(`{"kind":"` + task.Kind + `"}`), nil
		})
	}
	return mux
}

// submitAll submits n tasks of kind at once and waits for every result.
func submitAll(t *testing.T, c *cluster, via *node.Node, kind string, n int) []message.Result {
	t.Helper()
	cl := dial(t, via)
	results := make([]message.Result, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			reply, err := cl.Submit(t.Context(), message.Submit{Kind: kind, Payload: json.RawMessage(`{"i":1}`)})
			if err != nil {
				errs <- err
				return
			}
			res, err := waitResult(t, cl, reply.UUID)
			if err != nil {
				errs <- err
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(func() (all []error) {
		for err := range errs {
			all = append(all, err)
		}
		return all
	}()...); err != nil {
		t.Fatal(err)
	}
	return results
}

// A worker never runs more tasks at once than its slots, however many
// are submitted at once; the master holds the others back, so no worker
// has to refuse one as busy.
func TestSlotsAreNeverExceeded(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.Slots = 3 })
	master := c.start()
	c.waitConverged(15 * time.Second)
	var a, b concurrency
	c.cfg.Handlers = a.mux("nap")
	w1 := c.start()
	c.cfg.Handlers = b.mux("nap")
	w2 := c.start()
	c.waitConverged(15 * time.Second)

	submitAll(t, c, master, "nap", 60)
	for name, w := range map[string]*concurrency{"first": &a, "second": &b} {
		if m := w.max.Load(); m > 3 || m < 2 {
			t.Errorf("the %s worker ran %d tasks at once at most, want 3 (its slots), at least 2", name, m)
		}
	}
	for _, n := range []*node.Node{w1, w2} {
		if s := n.Status().Worker; s.MaxBusy > 3 || s.Refused != 0 {
			t.Errorf("%s: slots busy at most %d, refused %d; want at most 3 and none refused", n.ID(), s.MaxBusy, s.Refused)
		}
	}
}

// Tasks go only to workers that run their kind; a kind no member runs is
// accepted and waits, shown in the master's status, until a worker for it
// joins.
func TestTasksGoOnlyWhereTheirKindRuns(t *testing.T) {
	c := durable(t, nil)
	master := c.start()
	c.waitConverged(15 * time.Second)
	var a, b concurrency
	c.cfg.Handlers = a.mux("resize", message.KindTriple)
	resizer := c.start()
	c.cfg.Handlers = b.mux(message.KindTriple)
	c.start()
	c.waitConverged(15 * time.Second)

	for _, res := range submitAll(t, c, master, "resize", 20) {
		if res.Executor != resizer.ID() || res.Kind != "resize" || string(res.Result) != `{"kind":"resize"}` {
			t.Fatalf("a resize task's result %+v; want it from %s, the only worker that runs resize", res, resizer.ID())
		}
	}

	cl := dial(t, master)
	reply, err := cl.Submit(t.Context(), message.Submit{Kind: "orphan", Payload: json.RawMessage(`[1,2]`)})
	if err != nil || !reply.Accepted {
		t.Fatalf("a kind no member runs: %+v, %v; want it accepted", reply, err)
	}
	s := master.Status().Dispatch
	if s.Pending["orphan"] != 1 || len(s.Unhandled) != 1 || s.Unhandled[0] != "orphan" {
		t.Fatalf("status pending %v, unhandled kinds %v; want orphan pending and unhandled", s.Pending, s.Unhandled)
	}
	// The task is answered before its placement finds no worker and
	// queues it: wait for that.
	lines := []string{`meshpool_tasks_pending{kind="orphan"} 1`, `meshpool_tasks_waiting{kind="orphan"} 1`, `meshpool_kind_unhandled{kind="orphan"} 1`}
	testutil.Eventually(t, 5*time.Second, "/metrics shows the orphan kind pending, waiting and unhandled", func() bool {
		_, body := scrape(t, master)
		for _, line := range lines {
			if !strings.Contains(string(body), line+"\n") {
				return false
			}
		}
		return true
	})
	var o concurrency
	c.cfg.Handlers = o.mux("orphan")
	late := c.start()
	res, err := waitResult(t, cl, reply.UUID)
	if err != nil || res.Executor != late.ID() {
		t.Fatalf("the waiting task's result %+v, %v; want it from the worker that joined, %s", res, err, late.ID())
	}
}
