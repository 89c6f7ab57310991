package taskstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/taskstore"
)

// TestEtcdUnreachable stops etcd under a running Writer: a Put fails within
// about Timeout with an error that is not ErrFenced, the Writer keeps
// running, and once etcd is back the same Writer commits again.
func TestEtcdUnreachable(t *testing.T) {
	const timeout = time.Second
	srv, cli := newEtcd(t)
	opts := options(0)
	opts.Timeout = timeout
	w := startWriter(t, cli, newFence(t, cli), opts)
	if err := w.Put(t.Context(), pending(1)); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*timeout)
	defer cancel()
	start := time.Now()
	err := w.Put(ctx, pending(2))
	took := time.Since(start)
	t.Logf("Put with etcd down: after %s: %v", took.Round(time.Millisecond), err)
	if err == nil || errors.Is(err, taskstore.ErrFenced) {
		t.Fatalf("Put with etcd down: %v, want a txn error", err)
	}
	if took > timeout+time.Second {
		t.Errorf("Put with etcd down took %s, Timeout is %s", took, timeout)
	}
	if s := w.Stats(); s.Errors < 1 {
		t.Errorf("stats %+v, want an error counted", s)
	}

	srv.Restart()
	r := pending(3)
	testutil.Eventually(t, 15*time.Second, "Put never succeeded after etcd came back", func() bool {
		return w.Put(t.Context(), r) == nil
	})
	if _, _, ok := get(t, cli, r.UUID); !ok {
		t.Fatal("record absent after a successful Put")
	}
}

// TestStopWhileEtcdDown cancels Run while a txn waits for an unreachable
// etcd: Run returns nil at once and the waiting Put fails with the context's
// error, long before the txn's own timeout.
func TestStopWhileEtcdDown(t *testing.T) {
	srv, cli := newEtcd(t)
	opts := options(0)
	opts.Timeout = 30 * time.Second
	w := startWriter(t, cli, newFence(t, cli), opts)
	srv.Stop()

	putErr := make(chan error, 1)
	go func() { putErr <- w.Put(context.Background(), pending(1)) }()
	testutil.Eventually(t, 5*time.Second, "txn not sent", func() bool { return w.Stats().Txns == 1 })

	start := time.Now()
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-putErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put in flight when Run stopped: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put still waits after Run returned")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stopping took %s", took)
	}
}
