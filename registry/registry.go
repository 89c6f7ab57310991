package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdwatch"
	"github.com/meshpool/meshpool/internal/keyspace"
)

// Registry keeps this node registered in etcd and follows the membership.
// Create it with New and drive it with Run.
type Registry struct {
	cli     *clientv3.Client
	self    Record
	value   []byte // self, encoded
	key     string // keyspace.Node(prefix, self.ID)
	nodes   string // keyspace.Nodes(prefix)
	ttl     time.Duration
	timeout time.Duration // bound of every etcd request: a registration must fit well in a TTL
	log     *slog.Logger

	running atomic.Bool
	// skipped counts the versions of records under the prefix left out of
	// the membership: bad ones and ones of another cluster name.
	skipped atomic.Int64
	// registrations counts successful registrations (puts of our key),
	// the first one included.
	registrations atomic.Int64
	// keyGone receives a token when the mirror sees our registered key
	// deleted (or replaced by another record). Sent to under mu.
	keyGone chan struct{}

	mu      sync.Mutex
	members Membership
	synced  bool          // members reflects at least one snapshot
	changed chan struct{} // closed and replaced when members changes
	putRev  int64         // revision of our live put; 0 when not registered

	// warned holds the bad records already logged, key → mod revision.
	// Only the mirror goroutine touches it.
	warned map[string]int64
}

const (
	maxRequestTimeout = 5 * time.Second
	revokeTimeout     = 2 * time.Second
	minBackoff        = 100 * time.Millisecond
	maxBackoff        = 5 * time.Second
)

// New returns a Registry that will publish self. It validates cfg and self.
func New(cli *clientv3.Client, self Record, cfg Config) (*Registry, error) {
	if cli == nil {
		return nil, errors.New("registry: etcd client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := self.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	value, err := self.encode()
	if err != nil {
		return nil, err
	}
	return &Registry{
		cli:     cli,
		self:    self,
		value:   value,
		key:     keyspace.Node(cfg.Prefix, self.ID),
		nodes:   keyspace.Nodes(cfg.Prefix),
		ttl:     cfg.TTL,
		timeout: min(cfg.TTL/2, maxRequestTimeout),
		log:     cfg.Logger,
		keyGone: make(chan struct{}, 1),
		changed: make(chan struct{}),
		warned:  map[string]int64{},
	}, nil
}

// Run registers self under a lease with keep-alive, mirrors the prefix, and
// blocks until ctx ends; then it revokes the lease (with its own short
// timeout, since ctx is already done) and returns nil. etcd failures are
// logged and retried with back-off, never returned. Run may be called once.
func (r *Registry) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("registry: Run called twice")
	}
	mirror := etcdwatch.New(r.cli, r.nodes, r.log)
	var wg sync.WaitGroup
	wg.Go(func() { _ = mirror.Run(ctx, r.onSnapshot) })
	r.keepRegistered(ctx, mirror.Resync)
	wg.Wait()
	return nil
}

// Membership returns the latest snapshot and a channel that is closed at the
// next change. Until Run has read etcd once the snapshot is empty, with
// Revision 0. The snapshot is the caller's to keep.
func (r *Registry) Membership() (Membership, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members
	m.Members = slices.Clone(m.Members)
	return m, r.changed
}

// Registered reports whether our key is currently live in etcd as far as we
// know: put under a lease that is kept alive, and not seen deleted since.
func (r *Registry) Registered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.putRev != 0
}

// Registrations returns how many times this node has registered since Run
// started, the first registration included: more than one means it lost its
// lease or its key and registered again.
func (r *Registry) Registrations() int64 { return r.registrations.Load() }

// setRegistered records the revision of our put, or 0 when we are not
// registered. It drops a keyGone token left from an earlier registration.
func (r *Registry) setRegistered(rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.putRev = rev
	select {
	case <-r.keyGone:
	default:
	}
}

// onSnapshot is the mirror's callback: it notices our key being deleted and
// publishes the membership when it changed.
func (r *Registry) onSnapshot(s etcdwatch.Snapshot) {
	members, bad := decodeAll(r.nodes, r.self.Cluster, s.KVs)
	r.warnBad(bad)
	own, ok := Membership{Members: members}.Lookup(r.self.ID)
	ours := ok && own.same(r.self)

	r.mu.Lock()
	if r.putRev != 0 && s.Revision >= r.putRev && !ours {
		r.putRev = 0
		select {
		case r.keyGone <- struct{}{}:
		default:
		}
	}
	prev := r.members.Members
	changed := !r.synced || !sameMembers(prev, members)
	if changed {
		r.synced = true
		r.members = Membership{Revision: s.Revision, Members: members}
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.mu.Unlock()

	if changed {
		r.logChanges(prev, members)
	}
}

// maxWarnings bounds the bad records warnBad logs one by one per snapshot;
// the others are summed up in one line.
const maxWarnings = 10

// warnBad counts and logs each bad record once per version of it (a key
// that appears or changes): at most maxWarnings lines and a summary per
// snapshot, each quoting at most 200 bytes of the key and of the reason.
func (r *Registry) warnBad(bad []badRecord) {
	seen := make(map[string]int64, len(bad))
	logged, more := 0, 0
	for _, b := range bad {
		seen[b.key] = b.modRev
		if r.warned[b.key] == b.modRev {
			continue
		}
		r.skipped.Add(1)
		if logged == maxWarnings {
			more++
			continue
		}
		logged++
		switch {
		case errors.Is(b.err, ErrOtherCluster):
			r.log.Warn("skipping node record of another cluster", "key", clip(b.key), "err", clip(b.err.Error()))
		default:
			r.log.Warn("skipping bad node record", "key", clip(b.key), "size", b.size, "err", clip(b.err.Error()))
		}
	}
	if more > 0 {
		r.log.Warn("skipping more bad node records", "count", more)
	}
	r.warned = seen
}

// SkippedRecords returns how many records (each version of a key counted
// once) the membership left out: records that do not decode or validate,
// and records of another cluster name.
func (r *Registry) SkippedRecords() int64 { return r.skipped.Load() }

// logChanges logs the other nodes that came, went or changed between two
// sorted member lists.
func (r *Registry) logChanges(prev, next []Record) {
	before := make(map[string]Record, len(prev))
	for _, m := range prev {
		before[m.ID] = m
	}
	for _, m := range next {
		old, ok := before[m.ID]
		delete(before, m.ID)
		switch {
		case m.ID == r.self.ID:
		case !ok:
			r.log.Info("node added", "id", m.ID, "ip", m.IP)
		case !old.same(m):
			r.log.Info("node updated", "id", m.ID, "ip", m.IP)
		}
	}
	for _, m := range prev {
		if _, gone := before[m.ID]; gone && m.ID != r.self.ID {
			r.log.Info("node removed", "id", m.ID, "ip", m.IP)
		}
	}
}

// leaseString formats a lease ID as etcdctl shows it.
func leaseString(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }
