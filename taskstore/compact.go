package taskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultCompactionRetention is how much of etcd's history a Compactor
// keeps by default: far more than any watch lags behind.
const DefaultCompactionRetention = 5 * time.Minute

// compactTimeout bounds each request of a Compactor.
const compactTimeout = 10 * time.Second

// Compactor compacts etcd's history, keeping the revisions of the last
// Retain. etcd keeps every revision of every key until it is compacted, so
// the task writes grow the database without bound even while the live
// records stay few, until etcd refuses every write (ErrNoSpace). It works as
// etcd's own periodic auto-compaction: it samples the store's revision every
// tenth of Retain (at most every hour) and compacts to the newest sample at
// least Retain old. A watch that falls further behind than Retain gets
// ErrCompacted and must read again (internal/etcdwatch does).
//
// Compaction is etcd-wide, not limited to the prefix: every user of the
// etcd loses the history older than Retain.
type Compactor struct {
	cli    *clientv3.Client
	key    string // read for the store's revision: the client may read it
	retain time.Duration
	log    *slog.Logger

	compactions atomic.Int64
	revision    atomic.Int64 // the revision last compacted to
}

// NewCompactor returns a Compactor that keeps retain of history. It reads
// the revision from keyspace.Tasks(prefix), which the client must be allowed to
// read. log nil discards.
func NewCompactor(cli *clientv3.Client, prefix string, retain time.Duration, log *slog.Logger) *Compactor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Compactor{cli: cli, key: keyspace.Tasks(prefix), retain: retain, log: log}
}

// sample is the store's revision at one time.
type sample struct {
	at  time.Time
	rev int64
}

// Run compacts until ctx ends, then returns nil. Failures are logged and
// tried again at the next sample. It returns an error at once if the
// Compactor's arguments are not valid.
func (c *Compactor) Run(ctx context.Context) error {
	switch {
	case c.cli == nil:
		return errors.New("taskstore: compactor: etcd client is nil")
	case c.retain <= 0:
		return fmt.Errorf("taskstore: compactor: retention must be positive, got %s", c.retain)
	}
	every := min(max(c.retain/10, time.Millisecond), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	var samples []sample // oldest first, spanning about Retain
	for {
		if s, err := c.sample(ctx); err != nil {
			c.log.Debug("cannot read etcd's revision for compaction", "err", err)
		} else {
			if n := len(samples); n > 0 && s.rev < samples[n-1].rev {
				// An empty or restored etcd: the samples and the last
				// compaction belong to the one it replaced.
				c.log.Warn("etcd's revision went back (etcd replaced?): compaction starts over",
					"revision", s.rev, "was", samples[n-1].rev)
				samples = samples[:0]
				c.revision.Store(0)
			}
			samples = c.compact(ctx, append(samples, s))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample reads the store's revision now.
func (c *Compactor) sample(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, compactTimeout)
	defer cancel()
	at := time.Now()
	resp, err := c.cli.Get(ctx, c.key, clientv3.WithCountOnly())
	if err != nil {
		return sample{}, err
	}
	return sample{at: at, rev: resp.Header.Revision}, nil
}

// compact compacts to the newest sample at least Retain old, if any is
// newer than the last compaction, and returns the samples still needed.
func (c *Compactor) compact(ctx context.Context, samples []sample) []sample {
	cut := time.Now().Add(-c.retain)
	i := -1
	for i+1 < len(samples) && !samples[i+1].at.After(cut) {
		i++
	}
	if i < 0 {
		return samples
	}
	samples = samples[i:] // keep the target: it is tried again on failure
	rev := samples[0].rev
	if rev <= c.revision.Load() {
		return samples
	}
	cctx, cancel := context.WithTimeout(ctx, compactTimeout)
	defer cancel()
	_, err := c.cli.Compact(cctx, rev)
	switch {
	case err == nil:
		c.log.Debug("compacted etcd's history", "revision", rev, "retain", c.retain)
	case errors.Is(err, rpctypes.ErrCompacted):
		// Someone (etcd's own auto-compaction, an operator) compacted
		// further already: nothing to do.
	default:
		if ctx.Err() == nil {
			c.log.Warn("cannot compact etcd's history, will retry", "revision", rev, "err", err)
		}
		return samples
	}
	c.revision.Store(rev)
	c.compactions.Add(1)
	return samples
}

// CompactorStats say what a Compactor did.
type CompactorStats struct {
	Compactions int64 // compactions done (or found done by someone else)
	Revision    int64 // the revision last compacted to; 0: none yet
}

// Stats returns the counters so far.
func (c *Compactor) Stats() CompactorStats {
	return CompactorStats{Compactions: c.compactions.Load(), Revision: c.revision.Load()}
}
