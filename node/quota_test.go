package node_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// flood submits tasks of kind as submitter (on its subject, asking from its
// inboxes) as fast as its senders get
// answers, each a new task, until ctx ends, and counts the answers.
type flood struct {
	sent, accepted, refused atomic.Int64
	wg                      sync.WaitGroup
}

func startFlood(ctx context.Context, t *testing.T, url, submitter, kind string, senders int) *flood {
	t.Helper()
	subject := message.SubmitSubject(submitter)
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(message.InboxPrefix(submitter)))
	if err != nil {
		t.Fatal(err)
	}
	f := &flood{}
	body := message.Submit{Kind: kind, Payload: json.RawMessage("1")}.AppendJSON(nil)
	for range senders {
		f.wg.Go(func() {
			for ctx.Err() == nil {
				f.sent.Add(1)
				msg, err := nc.Request(subject, body, time.Second)
				if err != nil {
					continue
				}
				if reply, err := message.DecodeSubmitReply(msg.Data); err == nil && reply.Accepted {
					f.accepted.Add(1)
				} else {
					f.refused.Add(1)
				}
			}
		})
	}
	t.Cleanup(func() {
		f.wg.Wait()
		nc.Close()
	})
	return f
}

// One submitter flooding the master on tasks.submit.flood holds no more
// than --max-pending-per-submitter tasks, and another, on
// tasks.submit.calm, still gets every one of its submissions accepted
// promptly: in milliseconds, bar a slow etcd write under the race
// detector. The tasks are of a kind no worker runs: they stay pending.
// Without the bound the flood fills --max-pending, and calm is refused.
func TestAFloodingSubmitterDoesNotStarveAnother(t *testing.T) {
	const quota, calmTasks = 100, 50
	c := durable(t, func(cfg *node.Config) {
		cfg.MaxPending = 2000 // what the flood fills without the bound
		cfg.MaxPendingPerSubmitter = quota
	})
	master, workers := c.startN(2)
	url := clientURL(t, workers[0])

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	f := startFlood(ctx, t, url, "flood", "nobody", 64)
	testutil.Eventually(t, 20*time.Second, "the flood is refused", func() bool {
		return f.refused.Load() > 1000
	})

	calm, err := client.Dial(url, nats.UserInfo("calm", "any")) // an open cluster takes any credentials
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Close()
	if s := calm.Submitter(); s != "calm" {
		t.Fatalf("the client submits as %q, want calm", s)
	}
	var took []time.Duration
	for i := range calmTasks {
		sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		begin := time.Now()
		reply, err := calm.Submit(sctx, message.Submit{Kind: "nobody", Payload: json.RawMessage("2")})
		cancel()
		took = append(took, time.Since(begin))
		if err != nil || !reply.Accepted {
			t.Fatalf("calm's submission %d during the flood (%d sent, %d accepted): %+v, %v", i+1, f.sent.Load(), f.accepted.Load(), reply, err)
		}
	}
	stop()
	f.wg.Wait()
	slices.Sort(took)
	t.Logf("flood: %d sent, %d accepted, %d refused; calm: %d of %d accepted, median %s, slowest %s",
		f.sent.Load(), f.accepted.Load(), f.refused.Load(), len(took), calmTasks,
		took[len(took)/2].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))
	if median := took[len(took)/2]; median > 500*time.Millisecond {
		t.Fatalf("calm's submissions took %s at the median", median)
	}
	if n := f.accepted.Load(); n != quota {
		t.Fatalf("the flood got %d tasks accepted, want its bound %d", n, quota)
	}
	d := master.Status().Dispatch
	if d.OverQuota == 0 || d.Pending["nobody"] != quota+calmTasks {
		t.Fatalf("master: %d over quota, %d pending; want some, and %d", d.OverQuota, d.Pending["nobody"], quota+calmTasks)
	}
}
