package election

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdwatch"
)

// Leader is the master as seen from etcd.
type Leader struct {
	// ID is the node ID of the master; "" means no master right now.
	ID string `json:"id"`
	// Term is the create revision of the master's election key; 0 when none.
	Term int64 `json:"term"`
}

// Master returns the current master as seen from etcd, and a channel that is
// closed at its next change (of ID or Term). It works on every node, leader
// or not, while Run runs; before and after Run it is Leader{}.
func (e *Election) Master() (Leader, <-chan struct{}) {
	e.view.mu.Lock()
	defer e.view.mu.Unlock()
	return e.view.leader, e.view.leaderChanged
}

// CurrentLeader reads the master under the meshpool prefix once, by the same
// rule as Master; Leader{} when there is none.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, prefix string) (Leader, error) {
	resp, err := cli.Get(ctx, Prefix(prefix)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, fmt.Errorf("election: cannot read the master: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Leader{}, nil
	}
	kv := resp.Kvs[0]
	return Leader{ID: string(kv.Value), Term: kv.CreateRevision}, nil
}

// view is what the mirror of the election prefix last showed.
type view struct {
	mu sync.Mutex
	// leader and leaderChanged serve Master: the channel is closed and
	// replaced when leader changes.
	leader        Leader
	leaderChanged chan struct{}
	// rev is the revision of the last snapshot; revChanged is closed and
	// replaced at every snapshot. Run uses them to see its own key go.
	rev        int64
	revChanged chan struct{}
}

func newView() *view {
	return &view{leaderChanged: make(chan struct{}), revChanged: make(chan struct{})}
}

// oldest applies concurrency's rule: the leader is the key with the lowest
// create revision under the prefix.
func oldest(s etcdwatch.Snapshot) Leader {
	var l Leader
	for _, kv := range s.KVs {
		if l.Term == 0 || kv.CreateRevision < l.Term {
			l = Leader{ID: string(kv.Value), Term: kv.CreateRevision}
		}
	}
	return l
}

// set records a snapshot's leader and revision and reports whether the leader changed.
func (v *view) set(l Leader, rev int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rev = rev
	close(v.revChanged)
	v.revChanged = make(chan struct{})
	if l == v.leader {
		return false
	}
	v.leader = l
	close(v.leaderChanged)
	v.leaderChanged = make(chan struct{})
	return true
}

// get returns the last leader, the revision it was seen at and a channel
// closed at the next snapshot.
func (v *view) get() (Leader, int64, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leader, v.rev, v.revChanged
}

// observe is the mirror's callback.
func (e *Election) observe(s etcdwatch.Snapshot) {
	l := oldest(s)
	if e.view.set(l, s.Revision) {
		e.log.Info("master is", "id", l.ID, "term", l.Term)
	}
}
