package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/meshpool/meshpool/internal/etcdwatch"
	"github.com/meshpool/meshpool/internal/keyspace"
)

// Why a leadership context ended, as context.Cause reports it.
var (
	// ErrSessionLost: the session's lease expired or was revoked.
	ErrSessionLost = errors.New("election: session lost")
	// ErrKeyDeleted: the leader key disappeared while the session lived.
	ErrKeyDeleted = errors.New("election: leader key deleted")
	// ErrStopping: Run's context ended.
	ErrStopping = errors.New("election: stopping")
	// ErrEtcdReplaced: etcd was replaced under the election (its revision
	// went backwards or its cluster ID changed); the term means nothing there.
	ErrEtcdReplaced = errors.New("election: etcd was replaced")
)

var (
	errLeadReturned = errors.New("election: lead returned")

	errRunning  = errors.New("election: Run is already running")
	errNotOwner = errors.New("election: campaign ended but our key is not the oldest")
)

// Election campaigns for this node and follows who the leader is. Create it
// with New and drive it with Run.
type Election struct {
	cli    *clientv3.Client
	id     string
	prefix string // keyspace.Election(cfg.Prefix); the keys are prefix + "/" + lease
	ttl    time.Duration
	tm     timing
	log    *slog.Logger
	mirror *etcdwatch.Mirror
	view   *view

	running    atomic.Bool
	sessions   atomic.Int64 // sessions created, the first one included
	promotions atomic.Int64 // lead calls
	removed    atomic.Int64 // lease-less leader keys this node deleted
}

// New returns an Election for node nodeID. It does not talk to etcd yet.
func New(cli *clientv3.Client, nodeID string, cfg Config) (*Election, error) {
	if cli == nil {
		return nil, errors.New("election: etcd client is nil")
	}
	if nodeID == "" {
		return nil, errors.New("election: node ID is empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Election{
		cli:    cli,
		id:     nodeID,
		prefix: keyspace.Election(cfg.Prefix),
		ttl:    cfg.TTL,
		tm:     newTiming(cfg.TTL),
		log:    cfg.Logger,
		view:   newView(),
	}
	e.mirror = etcdwatch.New(cli, e.prefix+"/", cfg.Logger)
	e.mirror.RequestTimeout = e.tm.request
	e.mirror.MinBackoff, e.mirror.MaxBackoff = e.tm.minBackoff, e.tm.maxBackoff
	e.mirror.CheckInterval = e.tm.request
	return e, nil
}

// Run campaigns until ctx ends. Each time this node wins it calls
// lead(leaderCtx, leadership) synchronously; leaderCtx ends when the session is
// lost, when the leader key disappears (deleted by hand), when ctx ends,
// when no keep-alive has been acknowledged for so long that the lease may
// be about to expire on the server (see Leadership.Valid), or when etcd is
// seen replaced under the same endpoints, and context.Cause(leaderCtx)
// tells which: ErrSessionLost, ErrKeyDeleted, ErrLeaseExpiring, ErrStopping
// or ErrEtcdReplaced. lead must return soon after leaderCtx ends.
//
// When lead returns, Run resigns (if still leader) and campaigns again, with a
// new session if the old one is gone; if lead returned on its own, Run waits a
// growing back-off first, so a failing leader duty cannot spin. On ctx end it
// resigns, revokes the session lease and returns nil, within about the TTL
// even when etcd is unreachable. etcd failures are logged and retried with
// back-off. Run also maintains Leader. Only one Run may run at a time.
func (e *Election) Run(ctx context.Context, lead func(ctx context.Context, l Leadership)) error {
	if !e.running.CompareAndSwap(false, true) {
		return errRunning
	}
	defer e.running.Store(false)

	mctx, stopMirror := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.mirror.Run(mctx, e.observe) })
	wg.Go(func() { e.removeLeaseless(mctx) })
	defer func() {
		stopMirror()
		wg.Wait()
		e.view.clear() // nobody follows the election any more
	}()

	c := &candidate{e: e}
	defer c.close()
	campaignBackoff, leadBackoff := e.tm.minBackoff, e.tm.minBackoff
	for ctx.Err() == nil {
		if c.sess == nil && !c.openSession(ctx) {
			break
		}
		el := concurrency.NewElection(c.sess, e.prefix)
		e.log.Info("campaigning", "lease", leaseHex(c.sess.Lease()))
		term, err := c.campaign(ctx, el)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if c.sessionLost(err) {
				continue // a new session is due; openSession has its own back-off
			}
			e.log.Warn("campaign failed, retrying", "err", err, "retry_in", campaignBackoff)
			if !sleep(ctx, campaignBackoff) {
				break
			}
			campaignBackoff = min(2*campaignBackoff, e.tm.maxBackoff)
			continue
		}
		campaignBackoff = e.tm.minBackoff

		started := time.Now()
		reason := c.lead(ctx, term, el.Key(), lead)
		if err := c.resign(ctx, el); err != nil {
			// The key may still be there: start over with a new session, so
			// that the next win is a new key and a new term.
			e.log.Warn("cannot resign, dropping the session", "term", term, "err", err)
			c.dropSession()
		}
		c.sessionLost(nil)
		if errors.Is(reason, errLeadReturned) {
			if time.Since(started) > e.tm.maxBackoff {
				leadBackoff = e.tm.minBackoff
			}
			if !sleep(ctx, leadBackoff) {
				break
			}
			leadBackoff = min(2*leadBackoff, e.tm.maxBackoff)
		}
	}
	return nil
}

// Sessions returns how many etcd sessions this election has created, the
// first one included: more than one means a session was lost (or dropped
// after a failed resign) and created again.
func (e *Election) Sessions() int64 { return e.sessions.Load() }

// Promotions returns how many times this node has been promoted (its lead
// callback called) since Run started.
func (e *Election) Promotions() int64 { return e.promotions.Load() }

// Removed returns how many election keys without a lease this node has
// deleted (see Run).
func (e *Election) Removed() int64 { return e.removed.Load() }

// checkReplaced tells the mirror when h, the header of a response to a
// request sent after mark, shows that etcd was replaced: the view forgets
// the old etcd's keys (Leader is none until the mirror has read the new
// one), and watchLeadership ends a leadership of the old etcd.
func (e *Election) checkReplaced(mark etcdwatch.Mark, h *etcdserverpb.ResponseHeader) {
	if e.mirror.Replaced(mark, h) {
		e.view.invalidate()
		e.mirror.Resync()
	}
}

// candidate is the state of one Run: its current session, if any, and the
// leases of sessions it gave up on.
type candidate struct {
	e    *Election
	sess *concurrency.Session
	// stale are leases of dropped sessions. Their keys may outlive the
	// session (etcd restores leases with a fresh TTL after a restart), so
	// they are revoked as soon as etcd answers again.
	stale []clientv3.LeaseID
}

// openSession creates a session, retrying with back-off until it succeeds
// (true) or ctx ends (false).
func (c *candidate) openSession(ctx context.Context) bool {
	e := c.e
	backoff := e.tm.minBackoff
	for attempt := 1; ; attempt++ {
		s, err := e.newSession(ctx)
		if err == nil {
			c.sess = s
			e.sessions.Add(1)
			e.log.Debug("session created", "lease", leaseHex(s.Lease()))
			c.revokeStale(ctx)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		e.log.Warn("etcd unreachable, retrying", "attempt", attempt, "retry_in", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, e.tm.maxBackoff)
	}
}

// newSession grants the lease itself, with a bounded context: NewSession
// would grant with the client's context, which has no deadline, and giving it
// WithContext would also end the session's keep-alive with that context.
func (e *Election) newSession(ctx context.Context) (*concurrency.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, e.tm.request)
	defer cancel()
	mark := e.mirror.Mark()
	lease, err := e.cli.Grant(gctx, int64(e.ttl/time.Second))
	if err != nil {
		return nil, fmt.Errorf("election: cannot create session: %w", err)
	}
	// A lost session is the first sign of an empty etcd: check before
	// campaigning on what the mirror shows.
	e.checkReplaced(mark, lease.ResponseHeader)
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(e.ttl/time.Second)))
	if err != nil {
		_, _ = e.cli.Revoke(gctx, lease.ID)
		return nil, fmt.Errorf("election: cannot create session: %w", err)
	}
	return s, nil
}

// sessionLost drops the session if it is gone and reports whether it did.
// err is the last etcd error: a revoked lease is seen there before the
// keep-alive notices it.
func (c *candidate) sessionLost(err error) bool {
	if c.sess == nil {
		return false
	}
	select {
	case <-c.sess.Done():
	default:
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false
		}
	}
	c.e.log.Warn("session lost", "lease", leaseHex(c.sess.Lease()))
	c.dropSession()
	// A lost lease may be an etcd replaced by an empty one whose revision
	// has already passed the mirror's, with the same cluster ID: then no
	// header shows the replacement, and the mirror would keep the old
	// etcd's keys (and its leader) beside the new ones. One read of the
	// prefix settles it either way.
	c.e.mirror.Resync()
	return true
}

// dropSession stops refreshing the session's lease and remembers it to revoke.
func (c *candidate) dropSession() {
	c.sess.Orphan()
	c.stale = append(c.stale, c.sess.Lease())
	c.sess = nil
}

func (c *candidate) revokeStale(ctx context.Context) {
	for _, id := range c.stale {
		rctx, cancel := context.WithTimeout(ctx, c.e.tm.request)
		_, err := c.e.cli.Revoke(rctx, id)
		cancel()
		c.e.log.Debug("revoked an old session lease", "lease", leaseHex(id), "err", err)
	}
	c.stale = nil
}

// close revokes the session's lease, with its own deadline since Run's
// context is over by now.
func (c *candidate) close() {
	if c.sess == nil {
		return
	}
	c.sess.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), c.e.tm.request)
	defer cancel()
	if _, err := c.e.cli.Revoke(ctx, c.sess.Lease()); err != nil {
		c.e.log.Warn("cannot revoke the session lease, it will expire", "lease", leaseHex(c.sess.Lease()), "ttl", c.e.ttl, "err", err)
	}
	c.sess = nil
}

// campaign waits until this node is the leader and returns its term.
func (c *candidate) campaign(ctx context.Context, el *concurrency.Election) (int64, error) {
	e := c.e
	// Campaign never looks at the session: a lost session would leave it
	// waiting behind the other keys for ever. End it with the session.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.sess.Ctx(), cancel)()

	// On a cancelled context Campaign resigns with the client's context,
	// which has no deadline: with etcd unreachable it would block until etcd
	// answers. Run it aside so that Run can still stop in bounded time.
	done := make(chan error, 1)
	go func() { done <- el.Campaign(cctx, e.id) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cancel()
		t := time.NewTimer(e.tm.request)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			e.log.Warn("campaign did not stop (etcd unreachable?); it ends with the etcd client")
		}
		return 0, ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("election: cannot campaign: %w", err)
	}

	// Campaign returns once every older key is gone, without checking that
	// ours is still there (revoked lease, key deleted by hand): check.
	term := el.Rev()
	gctx, gcancel := context.WithTimeout(ctx, e.tm.request)
	defer gcancel()
	mark := e.mirror.Mark()
	resp, err := e.cli.Get(gctx, e.prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return 0, fmt.Errorf("election: cannot check leadership: %w", err)
	}
	e.checkReplaced(mark, resp.Header)
	if len(resp.Kvs) == 0 || string(resp.Kvs[0].Key) != el.Key() || resp.Kvs[0].CreateRevision != term {
		return 0, errNotOwner
	}
	return term, nil
}

// lead runs the lead callback under a leadership context and returns why
// that context ended.
func (c *candidate) lead(ctx context.Context, term int64, key string, lead func(context.Context, Leadership)) error {
	e := c.e
	// Not a child of ctx, so that its cause says "stopping" rather than
	// "context canceled"; watch ends it when ctx ends.
	lctx, cancelCtx := context.WithCancelCause(context.WithoutCancel(ctx))
	l := newLeadership(term, key)
	// Whatever ends the leadership makes it invalid first, so that lead's
	// code never sees its context ended while Valid still says true.
	cancel := func(cause error) {
		l.deadline.Store(0)
		cancelCtx(cause)
	}
	if err := e.confirmLease(ctx, c.sess.Lease(), l); err != nil {
		cancel(ErrLeaseExpiring)
		e.log.Warn("won, but cannot confirm the session lease; not leading", "term", term, "err", err)
		return fmt.Errorf("%w: %w", ErrLeaseExpiring, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.watchLeadership(ctx, lctx, cancel, c.sess, term) })
	wg.Go(func() { e.trackLease(lctx, cancel, c.sess.Lease(), l) })
	e.promotions.Add(1)
	e.log.Info("promoted", "term", term)
	lead(lctx, l)
	cancel(errLeadReturned)
	wg.Wait()
	reason := context.Cause(lctx)
	e.log.Info("demoted", "term", term, "reason", reason)
	return reason
}

// watchLeadership ends lctx when ctx ends, the session is lost, the
// mirror shows that our key (the oldest one, created at term) is gone, or
// etcd is seen replaced.
func (e *Election) watchLeadership(ctx, lctx context.Context, cancel context.CancelCauseFunc, s *concurrency.Session, term int64) {
	epoch := e.view.epoch()
	for {
		// A snapshot older than our key does not show it yet: only trust
		// one taken at or after term.
		l, rev, next := e.view.get()
		if e.view.epoch() != epoch {
			cancel(ErrEtcdReplaced)
			return
		}
		if rev >= term && l.Term != term {
			cancel(ErrKeyDeleted)
			return
		}
		select {
		case <-lctx.Done():
			return
		case <-ctx.Done():
			cancel(ErrStopping)
			return
		case <-s.Done():
			cancel(ErrSessionLost)
			return
		case <-next:
		}
	}
}

// resign gives up the leader key, with its own deadline since Run's context
// may be over.
func (c *candidate) resign(ctx context.Context, el *concurrency.Election) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.e.tm.request)
	defer cancel()
	if err := el.Resign(rctx); err != nil {
		return fmt.Errorf("election: cannot resign: %w", err)
	}
	return nil
}

func leaseHex(id clientv3.LeaseID) string { return strconv.FormatInt(int64(id), 16) }

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// removeLeaseless deletes the leader key when it has no lease, until ctx
// ends. Only a person or a broken tool writes such a key (a candidate's key
// always has its session's lease), and being the oldest it would block
// every candidate for ever. The delete is a Txn on the key's mod revision
// and lease 0, so a candidate's key is never deleted; every node tries, one
// succeeds.
func (e *Election) removeLeaseless(ctx context.Context) {
	backoff := e.tm.minBackoff
	for {
		kv, next := e.view.leaderKey()
		if kv != nil && kv.Lease == 0 {
			if err := e.deleteLeaseless(ctx, kv); err != nil {
				if ctx.Err() != nil {
					return
				}
				e.log.Warn("cannot delete an election key without a lease, retrying", "key", string(kv.Key), "err", err, "retry_in", backoff)
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, e.tm.maxBackoff)
				continue
			}
			backoff = e.tm.minBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}

func (e *Election) deleteLeaseless(ctx context.Context, kv *mvccpb.KeyValue) error {
	key := string(kv.Key)
	dctx, cancel := context.WithTimeout(ctx, e.tm.request)
	defer cancel()
	resp, err := e.cli.Txn(dctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision),
		clientv3.Compare(clientv3.LeaseValue(key), "=", 0),
	).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("election: cannot delete %s: %w", key, err)
	}
	if resp.Succeeded {
		e.removed.Add(1)
		e.log.Warn("deleted an election key without a lease: it was older than every candidate and blocked the election",
			"key", key, "value", truncate(string(kv.Value), 64), "create_revision", kv.CreateRevision)
	}
	return nil
}

// truncate bounds a value quoted in a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
