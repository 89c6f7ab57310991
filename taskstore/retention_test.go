package taskstore_test

import (
	"errors"
	"slices"
	"sync"
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

// TestRetentionLeaseCap completes more tasks at once than MaxLeaseKeys: they
// are kept under several leases, none holding more than MaxLeaseKeys keys
// (etcd deletes a lease's keys in one apply), and each record still lives
// at least the retention and at most about the retention plus a bucket.
func TestRetentionLeaseCap(t *testing.T) {
	const n, maxKeys, retention = 300, 40, 3 * time.Second
	const bucket = time.Second // retention/10, at least 1s
	_, cli := newEtcd(t)
	opts := options(retention)
	opts.MaxLeaseKeys, opts.MaxBatch = maxKeys, 16 // a txn's records share a lease
	w := startWriter(t, cli, newFence(t, cli), opts)

	records := make([]taskstore.Record, n)
	for i := range records {
		records[i] = pending(int64(i))
	}
	for _, err := range w.PutMany(t.Context(), records) {
		if err != nil {
			t.Fatal(err)
		}
	}
	completed := make([]time.Time, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, r := range records {
		wg.Go(func() {
			if err := w.Complete(t.Context(), done(r)); err != nil {
				errs <- err
			}
			completed[i] = time.Now()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	keys := make(map[clientv3.LeaseID]int) // keys of ours under each lease
	for _, r := range records {
		_, resp, ok := get(t, cli, r.UUID)
		if !ok || resp.Kvs[0].Lease == 0 {
			t.Fatalf("record %s after Complete: present %t, want it kept under a lease", r.UUID, ok)
		}
		keys[clientv3.LeaseID(resp.Kvs[0].Lease)]++
	}
	if want := (n + maxKeys - 1) / maxKeys; len(keys) < want {
		t.Errorf("%d completions with MaxLeaseKeys %d are under %d leases, want at least %d", n, maxKeys, len(keys), want)
	}
	for id, ours := range keys {
		ttl, err := cli.TimeToLive(t.Context(), id, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if len(ttl.Keys) > maxKeys {
			t.Errorf("lease %x holds %d keys (%d of these records), want at most MaxLeaseKeys, %d", id, len(ttl.Keys), ours, maxKeys)
		}
		if max := int64((retention + bucket) / time.Second); ttl.GrantedTTL > max {
			t.Errorf("lease %x granted for %ds, want at most the retention plus a bucket, %ds", id, ttl.GrantedTTL, max)
		}
	}
	t.Logf("%d completions under %d leases", n, len(keys))

	// Each is kept at least the retention after its completion returned
	// (less a little for the time between commit and return), and all are
	// gone within the retention plus a bucket after the last one (plus
	// etcd's revocation, every 0.5 s): a lease is granted before the
	// records attached to it are written.
	const slack = 100 * time.Millisecond
	last := slices.MaxFunc(completed, time.Time.Compare)
	for time.Now().Before(last.Add(retention - slack)) {
		for i, r := range records {
			if time.Now().Before(completed[i].Add(retention - slack)) {
				if _, _, ok := get(t, cli, r.UUID); !ok {
					t.Fatalf("record %d gone %s after its completion, retention %s", i, time.Since(completed[i]), retention)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	testutil.Eventually(t, time.Until(last.Add(retention+bucket+2*time.Second)), "completed records kept longer than the retention plus a bucket",
		func() bool { return count(t, cli) == 0 })
}
