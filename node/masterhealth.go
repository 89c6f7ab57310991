package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/registry"
)

// masterWarnEvery is how often a master that is still not a live member is
// warned about again, after the first warning.
const masterWarnEvery = time.Minute

// masterHealth says whether the master etcd names is a live member: a
// candidate's key (see election.Phantom) whose value names a registered
// node. Otherwise no submission is answered and no task is sent, so
// /status, /readyz, /metrics and the logs say why. watch keeps it; the
// others read it.
type masterHealth struct {
	mu      sync.Mutex
	problem string // "" while the master is a live member, or there is none
}

// get returns why the master is not a live member, or "".
func (h *masterHealth) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.problem
}

func (h *masterHealth) set(problem string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problem = problem
}

// masterProblem says why leader is not a live member, or "". now reports
// whether to say so at once: a master missing from the membership is only
// suspect, since its record and its election key come and go under two
// leases, each seen by its own watch.
func masterProblem(leader election.Leader, phantom string, mem registry.Membership) (problem string, now bool) {
	switch {
	case leader.ID == "":
		return "", false
	case phantom != "":
		return fmt.Sprintf("master %s (term %d) is not a live member: %s", clipID(leader.ID), leader.Term, phantom), true
	case mem.Revision == 0:
		return "", false // the membership is not read yet
	}
	if _, ok := mem.Lookup(leader.ID); !ok {
		return fmt.Sprintf("master %s (term %d) is not a live member: no registered node has that ID", clipID(leader.ID), leader.Term), false
	}
	return "", false
}

// watch keeps h up to date until ctx ends and logs: one warning when a
// problem starts, then one every masterWarnEvery while it lasts, and a line
// when it ends. A problem that is not reported at once is reported when it
// has lasted grace.
func (h *masterHealth) watch(ctx context.Context, reg *registry.Registry, el *election.Election, grace time.Duration, log *slog.Logger) {
	var (
		suspect  string    // the current problem, reported or not
		since    time.Time // when suspect was first seen
		reported bool      // suspect is in h and was warned about
		warned   time.Time // last warning
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		leader, leaderChanged := el.Leader()
		mem, memChanged := reg.Membership()
		problem, atOnce := masterProblem(leader, el.Phantom(), mem)
		now := time.Now()
		if problem != suspect {
			if reported {
				log.Info("master problem over", "was", suspect, "master", leader.ID, "term", leader.Term)
				h.set("")
			}
			suspect, since, reported = problem, now, false
		}
		var wake time.Duration
		switch {
		case suspect == "":
		case !reported && (atOnce || now.Sub(since) >= grace):
			reported, warned = true, now
			h.set(suspect)
			log.Warn("master is not a live member: no submission is answered", "reason", suspect)
			wake = masterWarnEvery
		case !reported:
			wake = since.Add(grace).Sub(now)
		case now.Sub(warned) >= masterWarnEvery:
			warned = now
			log.Warn("master is still not a live member", "reason", suspect, "since", since.Round(time.Second))
			wake = masterWarnEvery
		default:
			wake = warned.Add(masterWarnEvery).Sub(now)
		}
		if wake > 0 {
			timer.Reset(wake)
		}
		select {
		case <-ctx.Done():
			h.set("")
			return
		case <-leaderChanged:
		case <-memChanged:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// clipID bounds a master ID read from etcd (anyone may write it) quoted in
// a reason.
func clipID(id string) string {
	const n = 64
	if len(id) <= n {
		return id
	}
	return id[:n] + "…"
}
