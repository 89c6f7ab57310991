package election

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrLeaseExpiring: no keep-alive was acknowledged for so long that the
// session's lease may expire on the server within the safety margin.
var ErrLeaseExpiring = errors.New("election: lease may be expiring, no keep-alive acknowledged")

// Leadership is what a leader holds while it leads: the fencing token and a
// check that the leadership still surely holds.
type Leadership struct {
	// Term is the create revision of Key: it grows with every new leader.
	Term int64
	// Key is the leader's election key. A write guarded by
	// CreateRevision(Key) == Term fails once this leadership is over.
	Key string

	deadline *atomic.Int64 // unix nanos; see Valid
}

// Valid reports whether the leadership surely still holds: the last
// acknowledged keep-alive of the session's lease is recent enough that the
// lease cannot have expired on the server, with a safety margin. It reads
// the wall clock each time, so a process that was paused (SIGSTOP, a long GC
// or VM pause) past its lease sees false at once when it runs again, before
// any timer has fired. Check it right before every action that must not be
// taken by a deposed leader.
func (l Leadership) Valid() bool {
	return l.deadline != nil && time.Now().UnixNano() < l.deadline.Load()
}

// Deadline is the time after which Valid reports false unless another
// keep-alive is acknowledged.
func (l Leadership) Deadline() time.Time {
	if l.deadline == nil {
		return time.Time{}
	}
	return time.Unix(0, l.deadline.Load())
}

// margin is how long before the earliest possible server-side expiry the
// leader stops: network delay of the keep-alive reply and clock-rate drift
// between this host and the etcd leader.
func margin(ttl time.Duration) time.Duration { return max(ttl/4, 500*time.Millisecond) }

// confirmLease asks etcd for one keep-alive acknowledgement, so that the
// leadership starts with an exact deadline rather than a guess.
func (e *Election) confirmLease(ctx context.Context, lease clientv3.LeaseID, l Leadership) error {
	octx, cancel := context.WithTimeout(ctx, e.tm.request)
	defer cancel()
	ack, err := e.cli.KeepAliveOnce(octx, lease)
	if err != nil {
		return err
	}
	l.deadline.Store(time.Now().Add(time.Duration(ack.TTL)*time.Second - margin(e.ttl)).UnixNano())
	return nil
}

// trackLease keeps l's deadline at "last acknowledged keep-alive + TTL -
// margin" and ends lctx with ErrLeaseExpiring when it passes. The server
// renewed the lease at some moment before we got the acknowledgement, so the
// lease lives at least until that moment + TTL; the margin covers the reply's
// travel time.
func (e *Election) trackLease(lctx context.Context, cancel context.CancelCauseFunc, lease clientv3.LeaseID, l Leadership) {
	m := margin(e.ttl)
	// The session keeps this lease alive every TTL/3; this second listener
	// only observes the acknowledgements.
	acks, err := e.cli.KeepAlive(lctx, lease)
	if err != nil {
		cancel(ErrLeaseExpiring)
		return
	}
	timer := time.NewTimer(time.Until(l.Deadline()))
	defer timer.Stop()
	for {
		select {
		case <-lctx.Done():
			// The client closes acks once it sees lctx end; seen hanging
			// after etcd was replaced, so do not wait for ever.
			drain := time.NewTimer(e.tm.request)
			defer drain.Stop()
			for {
				select {
				case _, ok := <-acks:
					if !ok {
						return
					}
				case <-drain.C:
					e.log.Debug("keep-alive channel not closed in time, leaving it", "term", l.Term)
					return
				}
			}
		case <-timer.C:
			if !l.Valid() {
				e.log.Warn("no keep-alive acknowledged in time, stepping down before the lease can expire", "term", l.Term, "deadline", l.Deadline())
				cancel(ErrLeaseExpiring)
				continue
			}
			timer.Reset(time.Until(l.Deadline()))
		case ack, ok := <-acks:
			if !ok {
				acks = nil // the session's own Done() reports the loss
				continue
			}
			d := time.Now().Add(time.Duration(ack.TTL)*time.Second - m)
			if !l.extend(d) {
				continue // the leadership has ended: it stays invalid
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(time.Until(d))
		}
	}
}

// extend moves l's deadline to d, unless the leadership has ended (its
// deadline set to 0 by whatever ended it); it reports whether it did.
func (l Leadership) extend(d time.Time) bool {
	for {
		old := l.deadline.Load()
		if old == 0 {
			return false
		}
		if l.deadline.CompareAndSwap(old, d.UnixNano()) {
			return true
		}
	}
}

// newLeadership starts invalid: confirmLease sets the first deadline.
func newLeadership(term int64, key string) Leadership {
	return Leadership{Term: term, Key: key, deadline: new(atomic.Int64)}
}
