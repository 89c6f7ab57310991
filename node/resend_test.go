package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/registry"
)

// A task lost on its way to the worker (NATS delivers at most once, and
// nats-server drops what a closed duplicate route carried) is sent again
// when its submitter asks after it, long before --task-timeout; so is one
// whose result was lost. The worker here is a member record and a plain NATS
// subscriber that loses the first sending of each task (a durable one is
// acked, and its result lost), as a closed route would, and answers the rest.
func TestLostTaskIsSentAgainWhenItsSubmitterAsks(t *testing.T) {
	for _, durability := range []string{message.DurabilityNone, message.DurabilityDurable} {
		t.Run(durability, func(t *testing.T) {
			c := durable(t, func(cfg *node.Config) { cfg.TaskTimeout = time.Minute })
			master, _ := c.startN(1)
			const id = "lossy-0000000a"
			c.putRecord(registry.Record{
				ID: id, Name: "lossy", IP: "127.0.0.10", ClientURL: "nats://127.0.0.10:1",
				ClusterURL: "nats-route://127.0.0.10:1", HTTPURL: "http://127.0.0.10:1", Version: "test",
				Started: time.Now().UTC(),
			})
			nc, err := nats.Connect(clientURL(t, master))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			var mu sync.Mutex
			seen := map[string]int{}
			_, err = nc.Subscribe(message.TaskSubject(id), func(msg *nats.Msg) {
				task, err := message.DecodeTask(msg.Data)
				if err != nil {
					t.Errorf("task: %v", err)
					return
				}
				if msg.Reply != "" { // durable: acked, so only its result can be lost
					ack := message.Ack{Accepted: true, Term: task.Term}
					_ = msg.Respond(ack.AppendJSON(nil))
				}
				mu.Lock()
				seen[task.UUID]++
				first := seen[task.UUID] == 1
				mu.Unlock()
				if first {
					return // the non-durable task, or the durable one's result, lost on the way
				}
				now := message.NewTimestamp(time.Now())
				res := message.Result{
					UUID: task.UUID, Executor: id, Number: task.Number, Kind: message.KindTriple, Result: message.TripleResult(task.Number),
					Start: now, Finish: now, Term: task.Term, Attempt: task.Attempt,
				}
				_ = nc.Publish(message.SubjectResults, res.AppendJSON(nil))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, "the lossy worker is a member", func() bool {
				return len(master.Status().Members) == 2
			})

			cl := dial(t, master)
			rep, err := cl.Submit(t.Context(), message.Submit{Number: 7, Durability: durability})
			if err != nil || !rep.Accepted {
				t.Fatalf("submit: %+v, %v", rep, err)
			}
			// Far less than the task timeout: only a sending again can
			// bring the result within it.
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			res, err := cl.Wait(ctx, rep.UUID)
			if err != nil || string(res.Result) != "21" || res.Executor != id {
				t.Fatalf("result %+v, %v", res, err)
			}
			// The worker got the task again: the first sending's result was
			// lost. (The master's resent counts a sending again whose ack
			// came in time; on a loaded machine it may come after the ack
			// timeout, so the worker's count is the one to check.)
			mu.Lock()
			got := seen[rep.UUID]
			mu.Unlock()
			if got < 2 {
				t.Errorf("the worker got the task %d times, want a sending again", got)
			}
		})
	}
}
