package taskstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/taskstore"
)

func TestFence(t *testing.T) {
	_, cli := newEtcd(t)
	tests := []struct {
		name    string
		fence   func(t *testing.T) taskstore.Fence
		fenced  bool
		message string
	}{
		{"key with the term", func(t *testing.T) taskstore.Fence { return newFence(t, cli) }, false, ""},
		{"wrong term", func(t *testing.T) taskstore.Fence {
			f := newFence(t, cli)
			f.Term--
			return f
		}, true, ""},
		{"key deleted", func(t *testing.T) taskstore.Fence {
			f := newFence(t, cli)
			if _, err := cli.Delete(t.Context(), f.Key); err != nil {
				t.Fatal(err)
			}
			return f
		}, true, ""},
		{"key of a later term", func(t *testing.T) taskstore.Fence {
			f := newFence(t, cli)
			if _, err := cli.Delete(t.Context(), f.Key); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Put(t.Context(), f.Key, "another master"); err != nil {
				t.Fatal(err)
			}
			return f
		}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := startWriter(t, cli, tt.fence(t), options(time.Minute))
			p, d := pending(1), done(pending(2))
			errPut := w.Put(t.Context(), p)
			errComplete := w.Complete(t.Context(), d)
			for _, err := range []error{errPut, errComplete} {
				if tt.fenced != errors.Is(err, taskstore.ErrFenced) || (!tt.fenced && err != nil) {
					t.Fatalf("write: %v, want fenced %t", err, tt.fenced)
				}
			}
			for _, r := range []taskstore.Record{p, d} {
				if _, _, ok := get(t, cli, r.UUID); ok == tt.fenced {
					t.Errorf("record %s present %t, want %t", r.UUID, ok, !tt.fenced)
				}
			}
			if !tt.fenced {
				return
			}
			// The term is over: later writes fail without a txn.
			before := w.Stats()
			if err := w.Put(t.Context(), pending(3)); !errors.Is(err, taskstore.ErrFenced) {
				t.Fatalf("Put after fencing: %v", err)
			}
			if after := w.Stats(); after.Txns != before.Txns || after.Fenced < 1 {
				t.Fatalf("stats before %+v, after %+v: want no new txn and fenced ≥ 1", before, after)
			}
		})
	}
}

// TestFenceDuringTerm deposes a master that has been writing: its next
// writes fail and change nothing.
func TestFenceDuringTerm(t *testing.T) {
	_, cli := newEtcd(t)
	fence := newFence(t, cli)
	w := startWriter(t, cli, fence, options(0))
	r := pending(5)
	if err := w.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(t.Context(), fence.Key); err != nil {
		t.Fatal(err)
	}
	if err := w.Complete(t.Context(), done(r)); !errors.Is(err, taskstore.ErrFenced) {
		t.Fatalf("Complete after the key was deleted: %v", err)
	}
	if got, _, ok := get(t, cli, r.UUID); !ok || got.State != taskstore.Pending {
		t.Fatalf("record after a fenced Complete: %+v, present %t; want it still pending", got, ok)
	}
}

// TestBatching puts from many goroutines at once: all records arrive, in far
// fewer txns than writes, none bigger than MaxBatch.
func TestBatching(t *testing.T) {
	const n, maxBatch = 2000, 64
	_, cli := newEtcd(t)
	opts := options(0)
	opts.MaxBatch = maxBatch
	w := startWriter(t, cli, newFence(t, cli), opts)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := w.Put(t.Context(), pending(int64(i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := count(t, cli); c != n {
		t.Fatalf("%d records in etcd, want %d", c, n)
	}
	s := w.Stats()
	t.Logf("%d writes in %d txns: %.1f writes per txn", s.Ops, s.Txns, s.MeanBatch)
	if s.Ops != n || s.Errors != 0 || s.Fenced != 0 {
		t.Fatalf("stats %+v, want %d writes and no errors", s, n)
	}
	if s.Txns > n/8 {
		t.Errorf("%d txns for %d concurrent writes: not batched", s.Txns, n)
	}
	if s.Txns < n/maxBatch {
		t.Errorf("%d txns for %d writes: some carried more than MaxBatch %d", s.Txns, n, maxBatch)
	}
}

// TestLoneWriteLatency checks that a lone write does not wait for a batch to
// fill: one Put at a time takes about as long as one plain fenced txn.
func TestLoneWriteLatency(t *testing.T) {
	const rounds = 30
	_, cli := newEtcd(t)
	fence := newFence(t, cli)
	w := startWriter(t, cli, fence, options(0))

	direct := make([]time.Duration, 0, rounds)
	viaWriter := make([]time.Duration, 0, rounds)
	for range rounds {
		r := pending(1)
		v, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := cli.Txn(t.Context()).
			If(clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Term)).
			Then(clientv3.OpPut(keyspace.Task(prefix, r.UUID), string(v))).Commit()
		if err != nil || !resp.Succeeded {
			t.Fatalf("direct txn: %v, succeeded %t", err, resp != nil && resp.Succeeded)
		}
		direct = append(direct, time.Since(start))

		start = time.Now()
		if err := w.Put(t.Context(), pending(2)); err != nil {
			t.Fatal(err)
		}
		viaWriter = append(viaWriter, time.Since(start))
	}
	slices.Sort(direct)
	slices.Sort(viaWriter)
	d, v := direct[rounds/2], viaWriter[rounds/2]
	t.Logf("median latency: direct txn %s, Writer.Put %s", d, v)
	if v > 3*d+time.Millisecond {
		t.Errorf("a lone Put takes %s, a direct txn %s: the Writer waits for more", v, d)
	}
	if s := w.Stats(); s.Txns != rounds {
		t.Errorf("%d txns for %d sequential Puts, want one each", s.Txns, rounds)
	}
}

// TestSameKeyInFlight writes each of many records twice at once (Put and
// Complete from two goroutines) so that both land in one drain of the queue:
// no txn may carry a key twice, and every write must succeed.
func TestSameKeyInFlight(t *testing.T) {
	const n = 300
	_, cli := newEtcd(t)
	opts := options(time.Minute)
	opts.MaxInFlight = 1 // every write piles up behind the first txn
	w := startWriter(t, cli, newFence(t, cli), opts)

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		r := pending(int64(i))
		wg.Go(func() {
			if err := w.Put(t.Context(), r); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if err := w.Complete(t.Context(), done(r)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := count(t, cli); c != n {
		t.Fatalf("%d records in etcd, want %d", c, n)
	}
	s := w.Stats()
	t.Logf("stats %+v", s)
	if s.Ops != 2*n || s.Errors != 0 || s.MeanBatch < 2 {
		t.Fatalf("stats %+v: want %d writes, batched, no errors", s, 2*n)
	}
}

// TestSameKeyOrder holds the txn of a first write of a key and queues a
// second write of that key, then a full batch of other writes: those take a
// second txn slot, but the second write of the key must wait for the first
// txn, or it would commit first and the older value would win.
func TestSameKeyOrder(t *testing.T) {
	const maxBatch = 4
	srv, cli := newEtcd(t)
	r := pending(0)
	key := keyspace.Task(prefix, r.UUID)
	arrived, release := make(chan struct{}), make(chan struct{})
	var txns atomic.Int32 // txns writing key
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if tr, ok := req.(*pb.TxnRequest); ok && slices.ContainsFunc(tr.Success, func(o *pb.RequestOp) bool {
			return string(o.GetRequestPut().GetKey()) == key
		}) && txns.Add(1) == 1 {
			close(arrived)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	held := newClient(t, srv.Endpoint(), grpc.WithChainUnaryInterceptor(intercept))
	opts := options(0)
	opts.MaxBatch, opts.MaxInFlight = maxBatch, 2
	w := startWriter(t, held, newFence(t, cli), opts)

	first, second := r, r
	first.Attempts, second.Attempts = 1, 2
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- w.Put(t.Context(), first) })
	<-arrived
	wg.Go(func() { errs <- w.Put(t.Context(), second) })
	testutil.Eventually(t, 5*time.Second, "second write not queued", func() bool { return w.Stats().Queued == 1 })

	// Writes of other keys wait behind the txn in flight until they make a
	// full batch; then they go through the free slot.
	var others sync.WaitGroup
	putOther := func(i int) {
		others.Go(func() {
			if err := w.Put(t.Context(), pending(int64(i))); err != nil {
				t.Error(err)
			}
		})
	}
	for i := range maxBatch - 2 {
		putOther(i)
	}
	testutil.Eventually(t, 5*time.Second, "other writes not queued", func() bool { return w.Stats().Queued == maxBatch-1 })
	testutil.ConsistentlyNil(t, 200*time.Millisecond, func() error {
		if s := w.Stats(); s.Txns != 1 {
			return fmt.Errorf("stats %+v: a second txn started without a full batch waiting", s)
		}
		return nil
	})
	putOther(maxBatch)
	others.Wait()
	if n := txns.Load(); n != 1 {
		t.Fatalf("%d txns writing one key at once", n)
	}
	if s := w.Stats(); s.Txns != 2 || s.Queued != 1 {
		t.Fatalf("stats %+v, want the held txn and one other, and the second write queued", s)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _, ok := get(t, cli, r.UUID); !ok || got.Attempts != second.Attempts {
		t.Fatalf("record %+v (present %t), want the second write's", got, ok)
	}
}

func TestRunStops(t *testing.T) {
	_, cli := newEtcd(t)
	w := taskstore.NewWriter(cli, prefix, newFence(t, cli), options(0))

	// A Put made before Run starts waits for it.
	putErr := make(chan error, 1)
	go func() { putErr <- w.Put(context.Background(), pending(1)) }()
	testutil.Eventually(t, 5*time.Second, "Put not queued", func() bool { return w.Stats().Queued == 1 })
	if len(putErr) != 0 {
		t.Fatalf("Put returned before Run: %v", <-putErr)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run with an ended context returned %v, want nil", err)
	}
	select {
	case err := <-putErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("pending Put: %v, want Run's context error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending Put still waits after Run returned")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Put(ctx, pending(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put after Run returned: %v, want Run's context error", err)
	}
	if s := w.Stats(); s.Txns != 0 {
		t.Errorf("%d txns sent by a Run whose context had ended", s.Txns)
	}
	if err := w.Run(t.Context()); err == nil {
		t.Fatal("a second Run returned nil")
	}
}

func TestRunChecksArguments(t *testing.T) {
	_, cli := newEtcd(t)
	good := taskstore.Fence{Key: prefix + "/election/x", Term: 5}
	tests := []struct {
		name   string
		cli    *clientv3.Client
		prefix string
		fence  taskstore.Fence
		opts   taskstore.Config
	}{
		{"no client", nil, prefix, good, options(0)},
		{"prefix without slash", cli, "meshpool", good, options(0)},
		{"prefix with trailing slash", cli, "/meshpool/", good, options(0)},
		{"no fence key", cli, prefix, taskstore.Fence{Term: 5}, options(0)},
		{"no term", cli, prefix, taskstore.Fence{Key: good.Key}, options(0)},
		{"negative retention", cli, prefix, good, options(-time.Second)},
		{"negative max batch", cli, prefix, good, func() taskstore.Config { o := options(0); o.MaxBatch = -1; return o }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := taskstore.NewWriter(tt.cli, tt.prefix, tt.fence, tt.opts)
			err := w.Run(t.Context())
			if err == nil {
				t.Fatal("Run accepted the arguments")
			}
			if err := w.Put(t.Context(), pending(1)); err == nil {
				t.Fatal("Put succeeded after Run refused the arguments")
			}
		})
	}
}

func TestWriteChecksRecord(t *testing.T) {
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(time.Minute))
	bad := pending(1)
	bad.Executor = "a.b"
	if err := w.Put(t.Context(), bad); !errors.Is(err, taskstore.ErrInvalidRecord) {
		t.Errorf("Put of an invalid record: %v", err)
	}
	if err := w.Put(t.Context(), done(pending(1))); !errors.Is(err, taskstore.ErrInvalidRecord) {
		t.Errorf("Put of a record with a result: %v", err)
	}
	if err := w.Complete(t.Context(), pending(1)); !errors.Is(err, taskstore.ErrInvalidRecord) {
		t.Errorf("Complete without a result: %v", err)
	}
	if s := w.Stats(); s.Txns != 0 {
		t.Errorf("%d txns for invalid records", s.Txns)
	}
}

// TestPutManySharesTxns writes a batch of records together: each one
// committed, in as many txns as MaxBatch needs and not one per record, and
// a record that is not valid refused alone.
func TestPutManySharesTxns(t *testing.T) {
	_, cli := newEtcd(t)
	opts := options(time.Minute)
	opts.MaxBatch = 64
	w := startWriter(t, cli, newFence(t, cli), opts)
	recs := make([]taskstore.Record, 300)
	for i := range recs {
		recs[i] = pending(int64(i))
	}
	recs[7] = done(recs[7]) // final: Complete's, not Put's
	recs[9].UUID = "not-a-uuid"
	errs := w.PutMany(t.Context(), recs)
	for i, err := range errs {
		switch {
		case i == 7 || i == 9:
			if !errors.Is(err, taskstore.ErrInvalidRecord) {
				t.Errorf("record %d: %v, want ErrInvalidRecord", i, err)
			}
		case err != nil:
			t.Errorf("record %d: %v", i, err)
		default:
			if _, found, err := taskstore.Get(t.Context(), cli, prefix, recs[i].UUID); err != nil || !found {
				t.Errorf("record %d: not in etcd (found %v, err %v)", i, found, err)
			}
		}
	}
	// 298 writes of at most 64: 5 txns when they fill; a few more when a
	// txn leaves before the queue has filled the next.
	if s := w.Stats(); s.Ops != 298 || s.Txns > 12 {
		t.Errorf("%d writes in %d txns, want 298 in at most 12", s.Ops, s.Txns)
	}
}
