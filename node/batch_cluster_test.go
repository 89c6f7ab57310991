package node_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
)

// TestBatchThroughTheCluster submits 1,500 tasks as batches through a
// worker's node: every durable one recorded when accepted, every one run
// once, and a batch submitted again answered with duplicates.
func TestBatchThroughTheCluster(t *testing.T) {
	c := durable(t, nil)
	_, workers := c.startN(3)
	a := startAudit(t, c)
	cl := dial(t, workers[0])
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	subs := make([]message.Submit, 1500)
	for i := range subs {
		subs[i] = message.Submit{Number: int64(i)}
		if i%10 == 0 {
			subs[i].Durability = message.DurabilityNone
		}
	}
	replies, err := cl.SubmitMany(ctx, subs)
	if err != nil {
		t.Fatal(err)
	}
	var durableIDs []string
	for i, r := range replies {
		if !r.Accepted || r.Duplicate {
			t.Fatalf("answer %d: %+v", i, r)
		}
		if i%10 != 0 {
			durableIDs = append(durableIDs, r.UUID)
		}
	}
	// Accepted means recorded: every durable task has its record now.
	resp, err := c.cli.Get(ctx, keyspace.Tasks(c.cfg.Prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != int64(len(durableIDs)) {
		t.Fatalf("%d task records for %d durable tasks accepted (%v)", resp.Count, len(durableIDs), err)
	}
	for i, r := range replies {
		res, err := waitResult(t, cl, r.UUID)
		if err != nil || string(res.Result) != string(message.TripleResult(int64(i))) {
			t.Fatalf("task %d: %+v, %v", i, res, err)
		}
	}
	checkInvariant(t, a, durableIDs)

	for i := range subs {
		subs[i].UUID = replies[i].UUID
	}
	again, err := cl.SubmitMany(ctx, subs[1:200])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !r.Accepted || !r.Duplicate || r.UUID != subs[i+1].UUID {
			t.Fatalf("again %d: %+v", i, r)
		}
	}
}
