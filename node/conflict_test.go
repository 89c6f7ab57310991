package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// A uuid is an idempotency key: submitted again with another request (another
// number, another durability) it is a conflict, refused with a clear reason
// and counted, never answered with the other request's result. This holds
// while the task is pending, once it is done, once the master's index has
// forgotten it (looked up in etcd), and under a new master.
func TestUUIDReusedWithAnotherRequestIsAConflict(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.DoneIndexSize = 2 })
	c.start()
	master := c.waitConverged(15 * time.Second)
	cl := dial(t, master)
	ctx := t.Context()
	conflicts := int64(0)
	conflict := func(stage string, sub message.Submit, first string) {
		t.Helper()
		reply, err := cl.Submit(ctx, sub)
		if !errors.Is(err, client.ErrRefused) || reply.Accepted || reply.Result != nil ||
			!strings.HasPrefix(reply.Error, "conflict: uuid "+sub.UUID+" was submitted with another request ("+first+")") {
			t.Fatalf("%s: %+v submitted again: %+v, %v; want a conflict naming %s", stage, sub, reply, err, first)
		}
		conflicts++
	}
	same := func(stage string, sub message.Submit, state string) {
		t.Helper()
		reply, err := cl.Submit(ctx, sub)
		if err != nil || !reply.Duplicate || reply.State != state {
			t.Fatalf("%s: the same request again: %+v, %v", stage, reply, err)
		}
	}

	// Pending: there is no worker yet.
	durableTask := message.Submit{UUID: "0b5f0000-0000-4000-8000-000000000001", Number: 5}
	ephemeralTask := message.Submit{UUID: "0b5f0000-0000-4000-8000-000000000002", Number: 7, Durability: message.DurabilityNone}
	for _, sub := range []message.Submit{durableTask, ephemeralTask} {
		if _, err := cl.Submit(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	conflict("pending", message.Submit{UUID: durableTask.UUID, Number: 6}, "another kind or payload")
	conflict("pending", message.Submit{UUID: durableTask.UUID, Number: 5, Durability: message.DurabilityNone}, "durability durable")
	conflict("pending", message.Submit{UUID: ephemeralTask.UUID, Number: 7}, "durability none")
	same("pending", durableTask, message.StatePending)

	// Done, in the master's index.
	c.start()
	c.start()
	for _, sub := range []message.Submit{durableTask, ephemeralTask} {
		if _, err := waitResult(t, cl, sub.UUID); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the durable task done", func() bool {
		r, err := cl.Submit(ctx, durableTask)
		return err == nil && r.State == message.StateDone
	})
	conflict("done", message.Submit{UUID: durableTask.UUID, Number: 6}, "another kind or payload")
	conflict("done", message.Submit{UUID: ephemeralTask.UUID, Number: 6, Durability: message.DurabilityNone}, "another kind or payload")
	conflict("done", message.Submit{UUID: ephemeralTask.UUID, Number: 7}, "durability none")
	// The index holds two tasks: two more push these out.
	if rep, err := cl.Load(ctx, client.LoadSpec{N: 2, Concurrency: 1, Wait: true}); err != nil || rep.Results != 2 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	conflict("forgotten", message.Submit{UUID: durableTask.UUID, Number: 6}, "another kind or payload")
	same("forgotten", durableTask, message.StateDone)
	// A client that timed out waiting sends the same request again, and
	// each is counted: at least one count per conflict.
	if got := master.Status().Dispatch.Conflicts; got < conflicts {
		t.Fatalf("conflicts counted %d, want at least %d", got, conflicts)
	}

	// A new master loads the task from etcd.
	c.stop(master.ID())
	master = c.waitConverged(15 * time.Second)
	cl = dial(t, master)
	conflict("new master", message.Submit{UUID: durableTask.UUID, Number: 6}, "another kind or payload")
	same("new master", durableTask, message.StateDone)
	completed := int64(0)
	for _, n := range c.running() {
		completed += n.Status().Worker.Completed
	}
	if completed != 4 {
		t.Fatalf("workers completed %d tasks, want 4: a conflicting submission ran", completed)
	}
}
