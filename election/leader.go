package election

import (
	"context"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdwatch"
	"github.com/meshpool/meshpool/internal/keyspace"
)

// Leader is the elected node as seen from etcd (package node calls it the
// master).
type Leader struct {
	// ID is the node ID of the leader; "" means no leader right now.
	ID string `json:"id"`
	// Term is the create revision of the leader's election key; 0 when none.
	Term int64 `json:"term"`
}

// Leader returns the current leader as seen from etcd, and a channel that is
// closed at its next change (of ID or Term). It works on every node, leader
// or not, while Run runs; before and after Run it is Leader{}.
func (e *Election) Leader() (Leader, <-chan struct{}) {
	e.view.mu.Lock()
	defer e.view.mu.Unlock()
	return e.view.leader, e.view.leaderChanged
}

// CurrentLeader reads the leader under the meshpool prefix once, by the same
// rule as Leader; Leader{} when there is none.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, prefix string) (Leader, error) {
	resp, err := cli.Get(ctx, keyspace.Election(prefix)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, fmt.Errorf("election: cannot read the leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, nil
	}
	kv := resp.Kvs[0]
	return Leader{ID: string(kv.Value), Term: kv.CreateRevision}, nil
}

// Phantom returns why the leader etcd names cannot be a live candidate, or
// "" when nothing says so: its key has no lease (put by hand or by a broken
// tool; candidates delete it, see Run), or its key is not named after its
// lease as every candidate's is (another program holds it). Such a key is
// the oldest, so every candidate waits behind it. The channel of Leader is
// closed when this changes too.
func (e *Election) Phantom() string {
	e.view.mu.Lock()
	defer e.view.mu.Unlock()
	return e.view.phantom
}

// Replacements returns how many times etcd was seen replaced under the
// election (its revision went backwards or its cluster ID changed): terms
// start again from low numbers after each.
func (e *Election) Replacements() int64 {
	e.view.mu.Lock()
	defer e.view.mu.Unlock()
	return e.view.replacements
}

// view is what the mirror of the election prefix last showed.
type view struct {
	mu sync.Mutex
	// leader, its key and phantom serve Leader and Phantom:
	// leaderChanged is closed and replaced when one of them changes.
	leader        Leader
	key           *mvccpb.KeyValue // the leader's key, nil when none
	phantom       string
	leaderChanged chan struct{}
	// rev is the revision of the last snapshot; revChanged is closed and
	// replaced at every snapshot. Run uses them to see its own key go.
	rev        int64
	revChanged chan struct{}
	// stale is set when etcd was found replaced before the mirror read
	// it again: until a Full snapshot, the mirror's keys are the old etcd's.
	stale        bool
	replacements int64
}

func newView() *view {
	return &view{leaderChanged: make(chan struct{}), revChanged: make(chan struct{})}
}

// oldest applies concurrency's rule: the leader is the key with the lowest
// create revision under the prefix.
func oldest(s etcdwatch.Snapshot) *mvccpb.KeyValue {
	var o *mvccpb.KeyValue
	for _, kv := range s.KVs {
		if o == nil || kv.CreateRevision < o.CreateRevision {
			o = kv
		}
	}
	return o
}

// phantomReason says why kv, the oldest key under prefix, cannot be a
// candidate's, or "".
func phantomReason(prefix string, kv *mvccpb.KeyValue) string {
	switch {
	case kv == nil:
		return ""
	case kv.Lease == 0:
		return fmt.Sprintf("its election key %s has no lease (put by hand?)", truncate(string(kv.Key), 128))
	case string(kv.Key) != prefix+"/"+leaseHex(clientv3.LeaseID(kv.Lease)):
		return fmt.Sprintf("its election key %s is not a candidate's (not named after its lease %s)", truncate(string(kv.Key), 128), leaseHex(clientv3.LeaseID(kv.Lease)))
	}
	return ""
}

// set records a snapshot and reports whether the leader changed. While the
// view is stale only a Full snapshot counts.
func (v *view) set(prefix string, s etcdwatch.Snapshot) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stale && !s.Full {
		return false
	}
	if s.Replaced && !v.stale {
		v.replacements++ // the mirror noticed before Run did
	}
	v.stale = false
	kv := oldest(s)
	var l Leader
	if kv != nil {
		l = Leader{ID: string(kv.Value), Term: kv.CreateRevision}
	}
	return v.record(l, kv, phantomReason(prefix, kv), s.Revision)
}

// clear forgets the leader: nobody follows the election any more.
func (v *view) clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.record(Leader{}, nil, "", 0)
}

// invalidate forgets what the mirror showed of an etcd that was replaced;
// the next Full snapshot shows the new one.
func (v *view) invalidate() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stale = true
	v.replacements++
	v.record(Leader{}, nil, "", 0)
}

// record sets the view under v.mu and reports whether the leader changed.
func (v *view) record(l Leader, kv *mvccpb.KeyValue, phantom string, rev int64) bool {
	v.rev = rev
	close(v.revChanged)
	v.revChanged = make(chan struct{})
	v.key = kv
	if l == v.leader && phantom == v.phantom {
		return false
	}
	changed := l != v.leader
	v.leader, v.phantom = l, phantom
	close(v.leaderChanged)
	v.leaderChanged = make(chan struct{})
	return changed
}

// get returns the last leader, the revision it was seen at and a channel
// closed at the next snapshot.
func (v *view) get() (Leader, int64, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leader, v.rev, v.revChanged
}

// leaderKey returns the leader's key, nil when none, and a channel closed
// at the next snapshot.
func (v *view) leaderKey() (*mvccpb.KeyValue, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.key, v.revChanged
}

// epoch returns how many replacements of etcd the view has seen.
func (v *view) epoch() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.replacements
}

// observe is the mirror's callback.
func (e *Election) observe(s etcdwatch.Snapshot) {
	if e.view.set(e.prefix, s) {
		l, _ := e.Leader()
		e.log.Info("master is", "id", l.ID, "term", l.Term)
	}
}
