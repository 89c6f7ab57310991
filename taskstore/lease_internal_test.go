package taskstore

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeGrants hands out lease IDs 1, 2, … and counts the grants.
type fakeGrants struct {
	n   int
	err error
}

func (f *fakeGrants) grant(context.Context, int64) (clientv3.LeaseID, error) {
	if f.err != nil {
		return 0, f.err
	}
	f.n++
	return clientv3.LeaseID(f.n), nil
}

// TestLeasesCap hands out txns of keys on leases of at most maxKeys: a
// txn that would overfill the current lease goes on the next one, which
// was granted ahead once the current one was half full.
func TestLeasesCap(t *testing.T) {
	f := &fakeGrants{}
	l := newLeasesWith(f.grant, time.Minute, 100)
	if l.ttl != 66 || l.bucket != 6*time.Second {
		t.Fatalf("retention 1m: ttl %ds, bucket %s, want 66s and 6s", l.ttl, l.bucket)
	}
	get := func(n int) clientv3.LeaseID {
		t.Helper()
		id, err := l.get(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		if grant := l.ahead(); grant != nil {
			grant(t.Context())
		}
		return id
	}
	steps := []struct {
		keys   int
		lease  clientv3.LeaseID
		grants int // so far, ahead included
	}{
		{30, 1, 1}, // the first txn grants the first lease
		{30, 1, 2}, // 60 of 100: half full, the next is granted ahead
		{30, 1, 2}, // 90
		{30, 2, 2}, // 120 would overfill: the one granted ahead
		{30, 2, 3}, // 60 on lease 2: the next ahead
		{40, 2, 3}, // 100: full
		{1, 3, 3},  // the one granted ahead
	}
	for i, s := range steps {
		if got := get(s.keys); got != s.lease || f.n != s.grants {
			t.Fatalf("txn %d of %d keys: lease %d after %d grants, want lease %d after %d", i, s.keys, got, f.n, s.lease, s.grants)
		}
	}
}

// TestLeasesBucket grants a new lease when the bucket of the current one
// is over, however few keys it holds, and forgets a lease etcd lost.
func TestLeasesBucket(t *testing.T) {
	f := &fakeGrants{}
	l := newLeasesWith(f.grant, time.Minute, 100)
	if id, _ := l.get(t.Context(), 1); id != 1 {
		t.Fatalf("lease %d, want 1", id)
	}
	l.cur.until = time.Now() // the bucket is over
	if id, _ := l.get(t.Context(), 1); id != 2 {
		t.Fatalf("after the bucket: lease %d, want a new one, 2", id)
	}
	l.forget(2)
	if id, _ := l.get(t.Context(), 1); id != 3 {
		t.Fatalf("after forget: lease %d, want a new one, 3", id)
	}
	f.err = errors.New("etcd down")
	l.cur.keys = 60
	grant := l.ahead()
	if grant == nil {
		t.Fatal("half full, no grant ahead")
	}
	if l.ahead() != nil {
		t.Fatal("a second grant ahead while one is under way")
	}
	grant(t.Context())
	if l.next.id != 0 {
		t.Fatalf("a failed grant ahead left lease %d ahead", l.next.id)
	}
	l.cur.keys = 100
	if _, err := l.get(t.Context(), 1); !errors.Is(err, f.err) {
		t.Fatalf("full lease, none ahead, etcd down: %v, want the grant's error", err)
	}
}
