// Package etcdwatch keeps an in-memory mirror of every key under an etcd
// prefix: one Get, then a Watch from the revision after it, so no event is
// missed and none is replayed. A compacted, cancelled or broken watch is
// re-established the same way (Get, then Watch) without the caller noticing
// more than a fresh snapshot.
//
// An etcd replaced under the same endpoints (data wiped, restored from a
// backup) is noticed too: a watch response, or a small read every
// CheckInterval, whose revision is below the mirror's or whose cluster ID
// differs makes the mirror read the prefix again, and that snapshot says
// Replaced. A caller that sees the same in the header of one of its own
// responses asks Replaced, then Resync.
package etcdwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot is the state of every key under the prefix at one revision.
type Snapshot struct {
	// Revision is the etcd store revision the snapshot reflects.
	Revision int64
	// KVs are the keys under the prefix, sorted by key.
	KVs []*mvccpb.KeyValue
	// Full is true for a snapshot read with a Get of the whole prefix (the
	// first one, and after a broken watch or a Resync), false for one
	// updated from watch events.
	Full bool
	// Replaced is true when the Get behind this snapshot showed that etcd
	// was replaced since the previous snapshot: its revision went backwards
	// or its cluster ID changed. Revisions before and after do not compare.
	Replaced bool
}

// position is where etcd was when the mirror last heard from it: the
// highest revision any of its responses carried, and the cluster ID.
type position struct {
	rev     int64
	cluster uint64 // 0 when unknown
}

// before reports whether h shows an etcd that cannot come after p: a lower
// revision, or another cluster.
func (p position) before(h *pb.ResponseHeader) bool {
	if p.rev == 0 || h == nil {
		return false
	}
	return h.Revision < p.rev || (p.cluster != 0 && h.ClusterId != 0 && h.ClusterId != p.cluster)
}

// Mirror follows one prefix. Create it with New and drive it with Run.
type Mirror struct {
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger
	resync chan struct{}

	// RequestTimeout bounds each Get; MinBackoff and MaxBackoff bound the
	// wait between failed attempts. Set them before Run.
	RequestTimeout         time.Duration
	MinBackoff, MaxBackoff time.Duration
	// CheckInterval is how often Run reads one key (count only) to
	// compare etcd's revision and cluster ID with its own, so that an etcd
	// replaced under a quiet watch is noticed: the client resumes a broken
	// watch on its own, from a revision the new etcd has not reached, and
	// etcd sends no progress to such a watch. 0 never checks. Set it
	// before Run.
	CheckInterval time.Duration

	mu   sync.Mutex
	seen position // the newest position heard of, or what Replaced saw
}

var (
	errResync    = errors.New("resync requested")
	errBackwards = errors.New("etcd's revision went backwards or its cluster ID changed")
)

// New returns a Mirror of every key that starts with prefix.
func New(cli *clientv3.Client, prefix string, log *slog.Logger) *Mirror {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mirror{
		cli:            cli,
		prefix:         prefix,
		log:            log,
		resync:         make(chan struct{}, 1),
		RequestTimeout: 5 * time.Second,
		MinBackoff:     100 * time.Millisecond,
		MaxBackoff:     5 * time.Second,

		CheckInterval: 5 * time.Second,
	}
}

// Mark is where the mirror's etcd was at one moment. Take it just before
// sending a request, and check the response's header with Replaced.
type Mark struct{ pos position }

// Mark returns where etcd was when the mirror last heard from it.
func (m *Mirror) Mark() Mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Mark{m.seen}
}

// Replaced reports whether h, the header of a linearizable response (a
// write, a lease grant, a Get without WithSerializable) to a request sent
// after mark was taken, shows that etcd was replaced since: a revision below
// the mark's, or another cluster ID. Then it logs a warning; the caller
// forgets what it derived from the old snapshots and calls Resync. Each
// replacement is reported once: to the first caller that sees it.
func (m *Mirror) Replaced(mark Mark, h *pb.ResponseHeader) bool {
	if !mark.pos.before(h) {
		return false
	}
	m.mu.Lock()
	if !m.seen.before(h) { // someone reported this etcd already
		m.mu.Unlock()
		return false
	}
	was := m.seen
	m.seen = position{rev: h.Revision, cluster: h.ClusterId}
	m.mu.Unlock()
	m.log.Warn("etcd was replaced (revision went backwards or cluster ID changed)",
		"prefix", m.prefix, "revision", h.Revision, "was", was.rev, "cluster_id", clusterHex(h.ClusterId), "was_cluster_id", clusterHex(was.cluster))
	return true
}

func (m *Mirror) setSeen(p position) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = p
}

// Resync asks Run to read the prefix again from scratch, for example after the
// caller has reason to think etcd was replaced under it. It never blocks.
func (m *Mirror) Resync() {
	select {
	case m.resync <- struct{}{}:
	default:
	}
}

// Run calls onChange with a snapshot after the initial Get and after every
// batch of watch events, from this goroutine, until ctx ends. It returns nil
// when ctx ends; etcd failures are logged and retried with back-off.
func (m *Mirror) Run(ctx context.Context, onChange func(Snapshot)) error {
	backoff := m.MinBackoff
	var pos position // where etcd was when the last follow heard from it
	for {
		started := time.Now()
		var err error
		pos, err = m.follow(ctx, pos, onChange)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errResync) || errors.Is(err, errBackwards) {
			backoff = m.MinBackoff
			continue
		}
		if time.Since(started) > m.MaxBackoff {
			backoff = m.MinBackoff
		}
		m.log.Warn("etcd watch interrupted, retrying", "prefix", m.prefix, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.MaxBackoff)
	}
}

// follow does one Get and then watches until something goes wrong. prev is
// where etcd was when the previous follow last heard from it, if any; it
// returns the same for itself.
func (m *Mirror) follow(ctx context.Context, prev position, onChange func(Snapshot)) (position, error) {
	gctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
	resp, err := m.cli.Get(gctx, m.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return prev, fmt.Errorf("cannot get %s: %w", m.prefix, err)
	}
	kvs := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv
	}
	// pos is the highest revision heard of, rev the one kvs is at.
	pos := position{rev: resp.Header.Revision, cluster: resp.Header.ClusterId}
	rev := pos.rev
	// A linearizable Get never answers below a revision seen before on
	// the same etcd: this one is another.
	replaced := prev.before(resp.Header)
	if replaced {
		m.log.Warn("etcd was replaced (revision went backwards or cluster ID changed), its keys replace the old ones",
			"prefix", m.prefix, "revision", pos.rev, "was", prev.rev, "cluster_id", clusterHex(pos.cluster), "was_cluster_id", clusterHex(prev.cluster))
	}
	m.setSeen(pos)
	onChange(Snapshot{Revision: rev, KVs: sorted(kvs), Full: true, Replaced: replaced})

	// WithRequireLeader makes a member that lost its leader cancel the watch
	// instead of leaving it silently stale.
	wctx, cancelWatch := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancelWatch()
	wch := m.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	// stream is the highest revision this watch has delivered. A response
	// carries the revision etcd was at when it sent it, which may be below
	// what a check read meanwhile (the response waited in the stream while
	// the check went ahead of it: a slow consumer, a loaded machine), so a
	// response is compared with the watch's own responses, not with pos.
	stream := position{rev: rev, cluster: pos.cluster}
	var check <-chan time.Time
	if m.CheckInterval > 0 {
		t := time.NewTicker(m.CheckInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return pos, ctx.Err()
		case <-m.resync:
			return pos, errResync
		case <-check:
			// A linearizable read answers at or above every revision
			// committed before it, so below pos means another etcd. The
			// store's revision moves on outside the prefix too: a high
			// mark makes a new etcd stand out for longer.
			cctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
			resp, err := m.cli.Get(cctx, m.prefix, clientv3.WithCountOnly())
			cancel()
			if err != nil {
				continue // the watch reports an etcd that is gone
			}
			if pos.before(resp.Header) {
				m.log.Info("etcd's revision went backwards or its cluster ID changed, reading it again",
					"prefix", m.prefix, "revision", resp.Header.Revision, "was", pos.rev)
				return pos, errBackwards
			}
			pos.rev = resp.Header.Revision
			m.setSeen(pos)
		case wr, ok := <-wch:
			if !ok {
				return pos, errors.New("watch channel closed")
			}
			// A Resync asked for meanwhile wins: no snapshot from the
			// old watch after it.
			select {
			case <-m.resync:
				return pos, errResync
			default:
			}
			if wr.CompactRevision != 0 {
				return pos, fmt.Errorf("watch compacted at revision %d", wr.CompactRevision)
			}
			if err := wr.Err(); err != nil {
				return pos, fmt.Errorf("watch failed: %w", err)
			}
			// The client resumes a broken watch on its own: on an etcd
			// replaced meanwhile, from a revision it has not reached.
			// (A lagging member of a cluster can also answer below what
			// the watch delivered before: then the Get that follows finds
			// nothing replaced.)
			if stream.before(wr.Header) {
				m.log.Info("etcd's revision went backwards or its cluster ID changed, reading it again",
					"prefix", m.prefix, "revision", wr.Header.Revision, "was", stream.rev)
				return pos, errBackwards
			}
			stream.rev = max(stream.rev, wr.Header.Revision)
			if len(wr.Events) == 0 {
				continue
			}
			for _, ev := range wr.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					kvs[string(ev.Kv.Key)] = ev.Kv
				case clientv3.EventTypeDelete:
					delete(kvs, string(ev.Kv.Key))
				}
			}
			// Not wr.Header.Revision: that is the store's revision when etcd
			// sent the response, and a watch catching up on more than 1000
			// revisions gets them in several responses that all carry the
			// final one. The last event's revision is the one kvs is at.
			rev = wr.Events[len(wr.Events)-1].Kv.ModRevision
			pos.rev = max(pos.rev, wr.Header.Revision)
			m.setSeen(pos)
			onChange(Snapshot{Revision: rev, KVs: sorted(kvs)})
		}
	}
}

func sorted(kvs map[string]*mvccpb.KeyValue) []*mvccpb.KeyValue {
	out := make([]*mvccpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Key) < string(out[j].Key) })
	return out
}

// clusterHex formats a cluster ID as etcdctl shows it.
func clusterHex(id uint64) string { return fmt.Sprintf("%x", id) }
