package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/meshpool/meshpool/registry"
)

// joinTimes says when, after the exec, each part of the join condition was
// first seen to hold, and when the node's own steps before it were seen.
type joinTimes struct {
	up         time.Duration            // the new node's /status first answered
	registered time.Duration            // its /status first said registered
	own        time.Duration            // its routes name every peer
	peers      map[string]time.Duration // each peer's routes name the new node, by peer IP
	master     time.Duration            // the master's members list the new node
	all        time.Duration            // every part at once: the join
}

func (j joinTimes) String() string {
	reg := "registered not seen"
	if j.registered > 0 {
		reg = fmt.Sprintf("registered %.3f s", j.registered.Seconds())
	}
	s := fmt.Sprintf("HTTP up %.3f s, %s, own routes %.3f s", j.up.Seconds(), reg, j.own.Seconds())
	if len(j.peers) > 0 {
		var ps []string
		for _, ip := range slices.Sorted(maps.Keys(j.peers)) {
			ps = append(ps, fmt.Sprintf("%s %.3f s", ip, j.peers[ip].Seconds()))
		}
		s += ", peers' routes " + strings.Join(ps, " ")
	}
	return s + fmt.Sprintf(", master's members %.3f s", j.master.Seconds())
}

// last names the parts of the join condition that held last (all of them
// when they were first seen in the same poll).
func (j joinTimes) last() string {
	parts := map[string]time.Duration{"own routes": j.own, "the master's members": j.master}
	for ip, d := range j.peers {
		parts["the routes of peer "+ip] = d
	}
	latest := slices.Max(slices.Collect(maps.Values(parts)))
	var names []string
	for name, d := range parts {
		if latest-d < 3*time.Millisecond { // within one 5 ms poll
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, " and ")
}

// join starts one more node and waits until its /status routes name every
// other node of the cluster and master's /status members list it; with
// peerRoutes, also until every other node's routes name it. A route is one
// handshake that both ends see, so peerRoutes only matters for the small
// cluster where it is cheap to check. Every part is asked in every poll
// until it holds, so the progress output can say which part was late.
func (c *cluster) join(ctx context.Context, master *bnode, peerRoutes bool) (*bnode, joinTimes, error) {
	peers := slices.Clone(c.nodes)
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.id)
	}
	jt := joinTimes{peers: map[string]time.Duration{}}
	start := time.Now()
	nd, err := c.addNode()
	if err != nil {
		return nil, jt, err
	}
	pending := map[*bnode]bool{}
	if peerRoutes {
		for _, p := range peers {
			pending[p] = true
		}
	}
	err = poll(ctx, readyTimeout, 5*time.Millisecond, func() bool {
		if jt.own == 0 {
			st, err := c.env.status(ctx, nd)
			if err == nil && st.ID != "" {
				nd.id = st.ID
				if jt.up == 0 {
					jt.up = time.Since(start)
				}
				if jt.registered == 0 && st.Registered {
					jt.registered = time.Since(start)
				}
				if containsAll(st.Routes, ids) {
					jt.own = time.Since(start)
				}
			}
		}
		if nd.id == "" {
			return false
		}
		for p := range pending {
			st, err := c.env.status(ctx, p)
			if err == nil && slices.Contains(st.Routes, nd.id) {
				jt.peers[p.ip] = time.Since(start)
				delete(pending, p)
			}
		}
		if jt.master == 0 {
			st, err := c.env.status(ctx, master)
			if err == nil && slices.ContainsFunc(st.Members, func(r registry.Record) bool { return r.ID == nd.id }) {
				jt.master = time.Since(start)
			}
		}
		return jt.own != 0 && jt.master != 0 && len(pending) == 0
	})
	if err != nil {
		return nd, jt, fmt.Errorf("node %s did not join (%s): %w", nd.ip, jt, err)
	}
	jt.all = time.Since(start)
	return nd, jt, nil
}

// containsAll: every one of want is in have.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// leave sends SIGTERM to nd and waits until it is gone from the /status
// members of every other node; then it waits for the exit. Each peer is
// asked until it has dropped nd, then no more.
func (c *cluster) leave(ctx context.Context, nd *bnode) (float64, error) {
	pending := map[*bnode]bool{}
	for _, p := range c.nodes {
		if p != nd {
			pending[p] = true
		}
	}
	start := time.Now()
	if err := nd.p.signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	err := poll(ctx, 30*time.Second, 5*time.Millisecond, func() bool {
		for p := range pending {
			st, err := c.env.status(ctx, p)
			if err == nil && !slices.ContainsFunc(st.Members, func(r registry.Record) bool { return r.ID == nd.id }) {
				delete(pending, p)
			}
		}
		return len(pending) == 0
	})
	took := time.Since(start)
	c.remove(nd, syscall.SIGTERM)
	if err != nil {
		return 0, fmt.Errorf("node %s not gone from %d peers: %w", nd.ip, len(pending), err)
	}
	return took.Seconds(), nil
}

// joinLeave is the join and leave series: one cluster of two; a third node
// joins, then leaves with SIGTERM, runs times.
func joinLeave(ctx context.Context, e *env, runs int) (join, leave []float64, err error) {
	cl, err := e.newCluster(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	defer cl.close()
	master, _, _, err := cl.master(ctx)
	if err != nil {
		return nil, nil, err
	}
	var times []joinTimes
	for i := range runs {
		nd, jt, err := cl.join(ctx, master, true)
		if err != nil {
			return join, leave, err
		}
		l, err := cl.leave(ctx, nd)
		if err != nil {
			return join, leave, err
		}
		progress("  run %2d/%d: join %.3f s (%s; last: %s); leave %.3f s", i+1, runs, jt.all.Seconds(), jt, jt.last(), l)
		join, leave, times = append(join, jt.all.Seconds()), append(leave, l), append(times, jt)
	}
	med := median(join)
	for i, jt := range times {
		if jt.all.Seconds() > 2*med && jt.all > 50*time.Millisecond {
			progress("  OUTLIER: run %d: join %.3f s against a median of %.3f s; last to hold: %s; HTTP up at %.3f s, registered at %.3f s, own routes at %.3f s",
				i+1, jt.all.Seconds(), med, jt.last(), jt.up.Seconds(), jt.registered.Seconds(), jt.own.Seconds())
		}
	}
	return join, leave, nil
}
