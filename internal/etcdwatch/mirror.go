// Package etcdwatch keeps an in-memory mirror of every key under an etcd
// prefix: one Get, then a Watch from the revision after it, so no event is
// missed and none is replayed. A compacted, cancelled or broken watch is
// re-established the same way (Get, then Watch) without the caller noticing
// more than a fresh snapshot.
package etcdwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot is the state of every key under the prefix at one revision.
type Snapshot struct {
	// Revision is the etcd store revision the snapshot reflects.
	Revision int64
	// KVs are the keys under the prefix, sorted by key.
	KVs []*mvccpb.KeyValue
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
}

var errResync = errors.New("resync requested")

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
	}
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
	for {
		started := time.Now()
		err := m.follow(ctx, onChange)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errResync) {
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

// follow does one Get and then watches until something goes wrong.
func (m *Mirror) follow(ctx context.Context, onChange func(Snapshot)) error {
	gctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
	resp, err := m.cli.Get(gctx, m.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("cannot get %s: %w", m.prefix, err)
	}
	kvs := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv
	}
	rev := resp.Header.Revision
	onChange(snapshot(kvs, rev))

	// WithRequireLeader makes a member that lost its leader cancel the watch
	// instead of leaving it silently stale.
	wctx, cancelWatch := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancelWatch()
	wch := m.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.resync:
			return errResync
		case wr, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if wr.CompactRevision != 0 {
				return fmt.Errorf("watch compacted at revision %d", wr.CompactRevision)
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch failed: %w", err)
			}
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
			onChange(snapshot(kvs, wr.Events[len(wr.Events)-1].Kv.ModRevision))
		}
	}
}

func snapshot(kvs map[string]*mvccpb.KeyValue, rev int64) Snapshot {
	s := Snapshot{Revision: rev, KVs: make([]*mvccpb.KeyValue, 0, len(kvs))}
	for _, kv := range kvs {
		s.KVs = append(s.KVs, kv)
	}
	sort.Slice(s.KVs, func(i, j int) bool { return string(s.KVs[i].Key) < string(s.KVs[j].Key) })
	return s
}
