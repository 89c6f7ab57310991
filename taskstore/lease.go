package taskstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leases hands out the lease that Done records are kept under. Completions
// in the same time bucket share one lease: it is granted when the bucket's
// first completion needs it, with a TTL of retention + bucket, so a record
// completed anywhere in the bucket lives at least retention and at most
// about retention + bucket.
type leases struct {
	cli    *clientv3.Client
	bucket time.Duration
	ttl    int64 // seconds

	grant chan struct{} // one grant at a time, waited for with a context

	mu    sync.Mutex
	id    clientv3.LeaseID // 0: none
	until time.Time        // id is handed out before this time
}

// maxBucket is the longest time bucket.
const maxBucket = time.Minute

// newLeases returns the lease source for retention; with retention 0 it is
// never used.
func newLeases(cli *clientv3.Client, retention time.Duration) *leases {
	bucket := min(max(retention/10, time.Second), maxBucket)
	return &leases{
		cli:    cli,
		bucket: bucket,
		ttl:    int64((retention + bucket + time.Second - 1) / time.Second),
		grant:  make(chan struct{}, 1),
	}
}

// get returns the current bucket's lease, granting it if needed.
func (l *leases) get(ctx context.Context) (clientv3.LeaseID, error) {
	if id := l.current(); id != 0 {
		return id, nil
	}
	select {
	case l.grant <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("cannot grant a retention lease: %w", ctx.Err())
	}
	defer func() { <-l.grant }()
	if id := l.current(); id != 0 { // granted while we waited
		return id, nil
	}
	start := time.Now()
	resp, err := l.cli.Grant(ctx, l.ttl)
	if err != nil {
		return 0, fmt.Errorf("cannot grant a retention lease: %w", err)
	}
	l.mu.Lock()
	l.id, l.until = resp.ID, start.Add(l.bucket)
	l.mu.Unlock()
	return resp.ID, nil
}

func (l *leases) current() clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id != 0 && time.Now().Before(l.until) {
		return l.id
	}
	return 0
}

// forget drops id if etcd no longer knows it.
func (l *leases) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id == id {
		l.id = 0
	}
}
