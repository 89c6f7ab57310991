package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lease is a granted lease whose keep-alive runs until stop or until the
// lease is lost.
type lease struct {
	id     clientv3.LeaseID
	done   <-chan struct{} // closed when the keep-alive ends
	cancel context.CancelFunc
}

// stop ends the keep-alive and waits for its goroutine.
func (l *lease) stop() {
	l.cancel()
	<-l.done
}

// keepRegistered keeps our key in etcd until ctx ends, then revokes the
// lease. resync is called after every registration, so that the mirror reads
// the prefix again if etcd was replaced under us (revisions went backwards).
func (r *Registry) keepRegistered(ctx context.Context, resync func()) {
	var l *lease // the live lease, if any
	defer func() { r.unregister(ctx, l) }()

	backoff := minBackoff
	for ctx.Err() == nil {
		if l == nil {
			var err error
			if l, err = r.grant(ctx); err != nil {
				r.retryLater(ctx, err, &backoff)
				continue
			}
		}
		rev, err := r.put(ctx, l.id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.log.Warn("lease lost, registering again", "lease", leaseString(l.id), "reason", "lease not found")
			l.stop()
			l = nil
			pause(ctx, &backoff)
			continue
		}
		if err != nil {
			r.retryLater(ctx, err, &backoff)
			continue
		}

		since := time.Now()
		r.setRegistered(rev)
		r.registrations.Add(1)
		r.log.Info("registered", "id", r.self.ID, "ip", r.self.IP, "lease", leaseString(l.id), "key", r.key)
		resync()

		id := l.id
		var reason string
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			reason = "lease expired or revoked"
			l.stop()
			l = nil
		case <-r.keyGone:
			// The lease may be fine: put again on it. If it is gone too,
			// the put says so and we grant a new one.
			reason = "key deleted or overwritten"
		}
		r.setRegistered(0)
		r.log.Warn("lease lost, registering again", "lease", leaseString(id), "reason", reason)
		if time.Since(since) > maxBackoff {
			backoff = minBackoff
		}
		pause(ctx, &backoff)
	}
}

// retryLater logs a failed etcd request and waits for the back-off.
func (r *Registry) retryLater(ctx context.Context, err error, backoff *time.Duration) {
	if ctx.Err() != nil {
		return
	}
	r.log.Warn("etcd unreachable, retrying", "err", err, "retry_in", *backoff)
	pause(ctx, backoff)
}

// grant creates a lease of our TTL and starts keeping it alive.
func (r *Registry) grant(ctx context.Context) (*lease, error) {
	gctx, cancel := context.WithTimeout(ctx, r.timeout)
	resp, err := r.cli.Grant(gctx, int64(r.ttl/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("registry: cannot grant lease: %w", err)
	}
	kctx, stop := context.WithCancel(ctx)
	ch, err := r.cli.KeepAlive(kctx, resp.ID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("registry: cannot keep lease %s alive: %w", leaseString(resp.ID), err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The client drops responses when nobody reads them; we only care
		// about the channel closing, which means the lease is gone.
		for range ch {
		}
	}()
	return &lease{id: resp.ID, done: done, cancel: stop}, nil
}

// put writes our record under lease id and returns the revision of the put.
func (r *Registry) put(ctx context.Context, id clientv3.LeaseID) (int64, error) {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := r.cli.Put(pctx, r.key, string(r.value), clientv3.WithLease(id))
	if err != nil {
		return 0, fmt.Errorf("registry: cannot put %s: %w", r.key, err)
	}
	return resp.Header.Revision, nil
}

// unregister stops the keep-alive and revokes the lease, which deletes our
// key at once. ctx is done by now, so the revoke gets its own timeout.
func (r *Registry) unregister(ctx context.Context, l *lease) {
	r.setRegistered(0)
	if l == nil {
		return
	}
	l.stop()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	_, err := r.cli.Revoke(rctx, l.id)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		r.log.Warn("cannot revoke lease, the record stays until the ttl ends", "lease", leaseString(l.id), "ttl", r.ttl, "err", err)
		return
	}
	r.log.Info("unregistered", "id", r.self.ID, "lease", leaseString(l.id))
}

// pause waits for the back-off (or until ctx ends) and doubles it, up to
// maxBackoff.
func pause(ctx context.Context, backoff *time.Duration) {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	*backoff = min(2**backoff, maxBackoff)
}
