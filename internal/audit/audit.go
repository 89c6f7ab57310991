// Package audit checks meshpool's task invariant from outside, for tests:
// every accepted task has exactly one recorded result, and no record was
// written by a master whose term was already over. It watches the task
// records in etcd in revision order, so it sees every write, including ones
// a later write overwrote.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/taskstore"
)

// Audit follows the task records of one cluster.
type Audit struct {
	mu       sync.Mutex
	done     map[string]int // uuid → writes that recorded it done from not done
	state    map[string]taskstore.State
	maxTerm  int64
	stale    []string // writes by a term older than one already seen
	bad      []string // values that did not decode
	watchErr error
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// Start watches prefix's task records from the current revision on.
func Start(ctx context.Context, cli *clientv3.Client, prefix string) (*Audit, error) {
	resp, err := cli.Get(ctx, keyspace.Tasks(prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &Audit{done: map[string]int{}, state: map[string]taskstore.State{}, stop: cancel}
	a.wg.Go(func() { a.follow(ctx, cli, keyspace.Tasks(prefix), resp.Header.Revision+1) })
	return a, nil
}

// follow watches from rev on, and again from the next unseen revision when a
// watch breaks (etcd restarted, no leader for a while). Only a compacted
// history ends it: then writes were missed, and Check reports the error.
func (a *Audit) follow(ctx context.Context, cli *clientv3.Client, prefix string, rev int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		// Progress notifications move rev on while the prefix is quiet, so a
		// broken watch resumes from a revision etcd has not compacted.
		for wr := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithProgressNotify()) {
			if wr.CompactRevision != 0 {
				cancel()
				a.mu.Lock()
				a.watchErr = fmt.Errorf("audit: history compacted at %d, writes were missed", wr.CompactRevision)
				a.mu.Unlock()
				return
			}
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				a.apply(ev)
				rev = ev.Kv.ModRevision + 1
			}
			if wr.IsProgressNotify() {
				rev = max(rev, wr.Header.Revision+1)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *Audit) apply(ev *clientv3.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.Type != clientv3.EventTypePut {
		return
	}
	var r taskstore.Record
	if err := json.Unmarshal(ev.Kv.Value, &r); err != nil {
		a.bad = append(a.bad, string(ev.Kv.Key))
		return
	}
	if r.Term < a.maxTerm {
		a.stale = append(a.stale, fmt.Sprintf("%s written by term %d after term %d (revision %d)", r.UUID, r.Term, a.maxTerm, ev.Kv.ModRevision))
	}
	a.maxTerm = max(a.maxTerm, r.Term)
	if r.State == taskstore.Done && a.state[r.UUID] != taskstore.Done {
		a.done[r.UUID]++
	}
	a.state[r.UUID] = r.State
}

// Report is the invariant's verdict for a set of accepted tasks.
type Report struct {
	Accepted  int      // tasks the submitters were told were accepted
	Recorded  int      // of those, recorded done exactly once
	Lost      int      // of those, never recorded done
	Twice     int      // of those, recorded done more than once
	Stale     []string // writes by a term that was already over
	Malformed []string
}

// OK reports whether the invariant holds.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Twice == 0 && len(r.Stale) == 0 && len(r.Malformed) == 0
}

func (r Report) String() string {
	return fmt.Sprintf("accepted %d, recorded once %d, lost %d, recorded twice %d, stale-term writes %d, malformed %d",
		r.Accepted, r.Recorded, r.Lost, r.Twice, len(r.Stale), len(r.Malformed))
}

// Check reports on the accepted uuids.
func (a *Audit) Check(accepted []string) (Report, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := Report{Accepted: len(accepted), Stale: append([]string(nil), a.stale...), Malformed: append([]string(nil), a.bad...)}
	for _, id := range accepted {
		switch a.done[id] {
		case 0:
			rep.Lost++
		case 1:
			rep.Recorded++
		default:
			rep.Twice++
		}
	}
	return rep, a.watchErr
}

// Missing returns up to n of ids that are not recorded done.
func (a *Audit) Missing(ids []string, n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, id := range ids {
		if a.done[id] == 0 && len(out) < n {
			out = append(out, id)
		}
	}
	return out
}

// Recorded returns how many of ids are recorded done.
func (a *Audit) Recorded(ids []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, id := range ids {
		if a.done[id] > 0 {
			n++
		}
	}
	return n
}

// Close stops watching.
func (a *Audit) Close() {
	a.stop()
	a.wg.Wait()
}
