package taskstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leases hands out the leases that final records are kept under. A lease is
// shared by the completions of one time bucket, up to maxKeys of them: it
// is granted with a TTL of retention + bucket and handed out for a bucket
// after its grant, so a record completed under it lives at least retention
// and at most about retention + bucket.
//
// The cap on keys spreads the deletions: etcd deletes a lease's keys in one
// raft apply when it expires, which stalls every other request for as long
// (about 0.5 s for 60,000 keys), and it revokes expired leases one by one,
// at most 1,000 a second, so many small leases expire as many short
// applies. At a high completion rate the lease after the current one is
// granted ahead, beside a txn, once the current one is half full: a full
// lease seldom makes a txn wait for a grant.
type leases struct {
	grantFn func(ctx context.Context, ttl int64) (clientv3.LeaseID, error)
	bucket  time.Duration
	ttl     int64 // seconds
	maxKeys int

	grant chan struct{} // one grant on the path of a txn at a time, waited for with a context

	mu       sync.Mutex
	cur      lease // handed out now; zero: none
	next     lease // granted ahead, handed out when cur is full or over; zero: none
	granting bool  // a grant ahead is under way
}

// lease is one granted lease and the keys handed out on it.
type lease struct {
	id    clientv3.LeaseID // 0: none
	until time.Time        // handed out before this time: a bucket after its grant
	keys  int              // writes attached to it so far (some may have failed)
}

// usable reports whether l may take n more keys at now, out of maxKeys.
// A fresh lease takes any number.
func (l lease) usable(now time.Time, n, maxKeys int) bool {
	return l.id != 0 && now.Before(l.until) && (l.keys == 0 || l.keys+n <= maxKeys)
}

// maxBucket is the longest time bucket.
const maxBucket = time.Minute

// newLeases returns the lease source for retention, with at most maxKeys
// keys per lease; with retention 0 it is never used.
func newLeases(cli *clientv3.Client, retention time.Duration, maxKeys int) *leases {
	grant := func(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
		resp, err := cli.Grant(ctx, ttl)
		if err != nil {
			return 0, err
		}
		return resp.ID, nil
	}
	return newLeasesWith(grant, retention, maxKeys)
}

func newLeasesWith(grant func(ctx context.Context, ttl int64) (clientv3.LeaseID, error), retention time.Duration, maxKeys int) *leases {
	bucket := min(max(retention/10, time.Second), maxBucket)
	return &leases{
		grantFn: grant,
		bucket:  bucket,
		ttl:     int64((retention + bucket + time.Second - 1) / time.Second),
		maxKeys: maxKeys,
		grant:   make(chan struct{}, 1),
	}
}

// get returns a lease for n keys of one txn, granting one if needed.
func (l *leases) get(ctx context.Context, n int) (clientv3.LeaseID, error) {
	if id := l.take(n); id != 0 {
		return id, nil
	}
	select {
	case l.grant <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("cannot grant a retention lease: %w", ctx.Err())
	}
	defer func() { <-l.grant }()
	if id := l.take(n); id != 0 { // granted while we waited
		return id, nil
	}
	cur, err := l.grantNew(ctx)
	if err != nil {
		return 0, fmt.Errorf("cannot grant a retention lease: %w", err)
	}
	cur.keys = n
	l.mu.Lock()
	l.cur = cur
	l.mu.Unlock()
	return cur.id, nil
}

// grantNew grants a lease for the time bucket starting now.
func (l *leases) grantNew(ctx context.Context) (lease, error) {
	start := time.Now()
	id, err := l.grantFn(ctx, l.ttl)
	return lease{id: id, until: start.Add(l.bucket)}, err
}

// take hands out n keys on the current lease, or on the one granted ahead
// when the current one is full or its bucket is over; 0 if neither can.
func (l *leases) take(n int) clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.cur.usable(now, n, l.maxKeys) {
		if !l.next.usable(now, n, l.maxKeys) {
			return 0
		}
		l.cur, l.next = l.next, lease{}
	}
	l.cur.keys += n
	return l.cur.id
}

// ahead returns the grant of the next lease when it should be granted
// ahead now (the current lease is half full, none is granted ahead and no
// grant ahead is under way), nil otherwise. A failed grant ahead leaves none
// ahead: the txn that needs a lease then grants it.
func (l *leases) ahead() (grant func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.granting || l.next.usable(time.Now(), 1, l.maxKeys) || l.cur.id == 0 || 2*l.cur.keys < l.maxKeys {
		return nil
	}
	l.granting = true
	return func(ctx context.Context) {
		next, err := l.grantNew(ctx)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.granting = false
		if err == nil {
			l.next = next
		}
	}
}

// forget drops id if etcd no longer knows it.
func (l *leases) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur.id == id {
		l.cur = lease{}
	}
	if l.next.id == id {
		l.next = lease{}
	}
}
