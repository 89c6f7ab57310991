package taskstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/ratelog"
)

// commit sends batch as one txn guarded by the fence. It returns nil,
// ErrFenced, or what went wrong.
func (w *Writer) commit(ctx context.Context, batch []*op) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	w.stats.txns.Add(1)
	w.stats.ops.Add(int64(len(batch)))

	keys := map[*leases]int{} // the writes of each retention in this txn
	for _, o := range batch {
		if !o.del && o.lease != nil {
			keys[o.lease]++
		}
	}
	granted := make(map[*leases]clientv3.LeaseID, len(keys)) // the lease they go under
	var ahead sync.WaitGroup                                 // next leases granted beside the txn
	defer ahead.Wait()
	for l, n := range keys {
		id, err := l.get(ctx, n)
		if err != nil {
			return w.failedTxn(len(batch), err)
		}
		granted[l] = id
		if grant := l.ahead(); grant != nil {
			ahead.Go(func() { grant(ctx) })
		}
	}
	ops := make([]clientv3.Op, len(batch))
	for i, o := range batch {
		switch {
		case o.del:
			ops[i] = clientv3.OpDelete(o.key)
		case o.lease != nil:
			ops[i] = clientv3.OpPut(o.key, o.value, clientv3.WithLease(granted[o.lease]))
		default:
			ops[i] = clientv3.OpPut(o.key, o.value)
		}
	}
	resp, err := w.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(w.fence.Key), "=", w.fence.Term)).
		Then(ops...).
		Else(clientv3.OpGet(w.fence.Key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			for l, id := range granted {
				l.forget(id)
			}
		}
		return w.failedTxn(len(batch), err)
	}
	if !resp.Succeeded {
		w.stats.fenced.Add(1)
		if w.fenced.CompareAndSwap(false, true) {
			now := int64(0) // create revision of the fence key now; 0: gone
			if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
				now = r.Kvs[0].CreateRevision
			}
			w.log.Warn("fenced: this master's term is over, task writes refused",
				"fence_key", w.fence.Key, "term", w.fence.Term, "key_create_revision", now)
		}
		return ErrFenced
	}
	if w.noSpace.CompareAndSwap(true, false) {
		w.log.Info("etcd has space again: task writes accepted")
	}
	return nil
}

func (w *Writer) failedTxn(n int, err error) error {
	w.stats.errors.Add(1)
	if errors.Is(err, rpctypes.ErrNoSpace) {
		// Every write fails alike until an operator frees space: say so
		// once, not once per txn.
		if w.noSpace.CompareAndSwap(false, true) {
			w.log.Error(ErrNoSpace.Error()+": task writes refused until an operator compacts, defragments and disarms etcd", "err", err)
		}
		return fmt.Errorf("%w: cannot commit a txn of %d writes: %w", ErrNoSpace, n, err)
	}
	w.log.Warn("cannot commit task writes", ratelog.Limit, "writes", n, "err", err)
	return fmt.Errorf("cannot commit a txn of %d writes: %w", n, err)
}
