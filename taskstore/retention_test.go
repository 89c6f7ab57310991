package taskstore_test

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/taskstore"
)

// TestRetention completes tasks one after another, spread over one second,
// with Retention 2s: they are kept as Done under one shared lease (two if
// the completions straddle a time bucket), each for at least 2s after its
// completion, then etcd deletes them.
func TestRetention(t *testing.T) {
	const n, retention = 20, 2 * time.Second
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(retention))

	leasesBefore := countLeases(t, cli)
	records := make([]taskstore.Record, n)
	completed := make([]time.Time, n)
	tick := time.NewTicker(time.Second / n)
	defer tick.Stop()
	for i := range records {
		<-tick.C
		r := pending(int64(i))
		if err := w.Put(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		if err := w.Complete(t.Context(), done(r)); err != nil {
			t.Fatal(err)
		}
		records[i], completed[i] = r, time.Now()
	}

	leases := make(map[int64]bool)
	for _, r := range records {
		got, resp, ok := get(t, cli, r.UUID)
		if !ok || got.State != taskstore.Done || got.Result == nil {
			t.Fatalf("record %s after Complete: %+v (present %t), want it done", r.UUID, got, ok)
		}
		if resp.Kvs[0].Lease == 0 {
			t.Fatalf("record %s is kept without a lease", r.UUID)
		}
		leases[resp.Kvs[0].Lease] = true
	}
	if len(leases) > 2 {
		t.Errorf("%d completions within a second used %d leases, want them shared", n, len(leases))
	}
	if d := countLeases(t, cli) - leasesBefore; d > 2 || d < 1 {
		t.Errorf("etcd has %d more leases after %d completions, want 1 or 2", d, n)
	}

	// Each is kept for the retention time after its completion (less a
	// little for the time between commit and return), then it is gone.
	const slack = 100 * time.Millisecond
	for time.Now().Before(completed[n-1].Add(retention - slack)) {
		for i, r := range records {
			if _, _, ok := get(t, cli, r.UUID); !ok && time.Now().Before(completed[i].Add(retention-slack)) {
				t.Fatalf("record %d gone %s after its completion, retention %s", i, time.Since(completed[i]), retention)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	testutil.Eventually(t, 4*time.Second, "completed records still there", func() bool { return count(t, cli) == 0 })
	t.Logf("records gone %s after the last completion", time.Since(completed[n-1]).Round(100*time.Millisecond))
}

// TestRetentionZero deletes a task at completion.
func TestRetentionZero(t *testing.T) {
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(0))
	r := pending(3)
	if err := w.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := get(t, cli, r.UUID); !ok {
		t.Fatal("record absent after Put")
	}
	if err := w.Complete(t.Context(), done(r)); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := get(t, cli, r.UUID); ok {
		t.Fatalf("record still there after Complete with Retention 0: %+v", got)
	}
	if n := countLeases(t, cli); n != 0 {
		t.Errorf("%d leases granted with Retention 0", n)
	}
}

func countLeases(t testing.TB, cli *clientv3.Client) int {
	t.Helper()
	resp, err := cli.Leases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Leases)
}

// TestLongestRetention completes a task with Retention MaxRetention: etcd
// grants its lease and the result is recorded. One second more than etcd's
// longest lease is refused by etcd, which is why Validate refuses more.
func TestLongestRetention(t *testing.T) {
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(taskstore.MaxRetention))
	r := pending(5)
	if err := w.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := w.Complete(t.Context(), done(r)); err != nil {
		t.Fatalf("Complete with retention %s: %v", taskstore.MaxRetention, err)
	}
	got, resp, ok := get(t, cli, r.UUID)
	if !ok || got.State != taskstore.Done || resp.Kvs[0].Lease == 0 {
		t.Fatalf("record after Complete: %+v (present %t), want it done under a lease", got, ok)
	}
	ttl, err := cli.TimeToLive(t.Context(), clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(keyspace.MaxLeaseTTL / time.Second); ttl.GrantedTTL > max || ttl.GrantedTTL < int64(taskstore.MaxRetention/time.Second) {
		t.Fatalf("lease granted for %ds, want between the retention and etcd's longest, %ds", ttl.GrantedTTL, max)
	}
	if _, err := cli.Grant(t.Context(), int64(keyspace.MaxLeaseTTL/time.Second)+1); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("etcd granted a lease longer than keyspace.MaxLeaseTTL: %v", err)
	}
}
