package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
)

const clockTicks = 100 // USER_HZ on Linux

// serialPuts is the baseline of figure 1: sequential 200-byte puts for d.
func serialPuts(ctx context.Context, cli *clientv3.Client, d time.Duration) (float64, error) {
	val := strings.Repeat("x", 200)
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := cli.Put(ctx, fmt.Sprintf("/bench/puts/%d", n%100), val); err != nil {
			return 0, fmt.Errorf("cannot put: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// throughput is figure 1: 5000 durable tasks, 128 in flight, through a worker.
func throughput(ctx context.Context, worker *bnode) (float64, error) {
	c, err := client.Dial(worker.natsURL())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	lctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	rep, err := c.Load(lctx, 5000, 128, true)
	if err != nil {
		return 0, fmt.Errorf("cannot load: %w", err)
	}
	if rep.Missing > 0 || rep.Accepted < 5000 {
		return 0, fmt.Errorf("load: accepted %d of 5000, %d results missing", rep.Accepted, rep.Missing)
	}
	return float64(rep.Results) / rep.Took.Seconds(), nil
}

// latencies are the p50 and p99 of a run, in milliseconds.
type latencies struct{ p50, p99 float64 }

func percentiles(ds []time.Duration) latencies {
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	return latencies{p50: at(0.5), p99: at(0.99)}
}

// submitLatency is figure 2: sequential Submit + Wait, one task in flight.
func submitLatency(ctx context.Context, worker *bnode, n int) (latencies, error) {
	c, err := client.Dial(worker.natsURL())
	if err != nil {
		return latencies{}, err
	}
	defer c.Close()
	if err := c.Follow(); err != nil {
		return latencies{}, err
	}
	one := func(i int) (time.Duration, error) {
		id := uuid.NewString()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := c.Submit(sctx, message.Submit{UUID: id, Number: int64(i)}); err != nil {
			return 0, fmt.Errorf("cannot submit: %w", err)
		}
		if _, err := c.Wait(sctx, id); err != nil {
			return 0, fmt.Errorf("cannot wait: %w", err)
		}
		return time.Since(start), nil
	}
	for i := range 20 { // warm-up
		if _, err := one(i); err != nil {
			return latencies{}, err
		}
	}
	ds := make([]time.Duration, 0, n)
	for i := range n {
		d, err := one(i)
		if err != nil {
			return latencies{}, err
		}
		ds = append(ds, d)
	}
	return percentiles(ds), nil
}

// natsRoundTrip is figure 2's baseline: request-reply across one route, a
// responder on a's client port, requests through b's.
func natsRoundTrip(ctx context.Context, a, b *bnode, n int) (latencies, error) {
	na, err := nats.Connect(a.natsURL())
	if err != nil {
		return latencies{}, fmt.Errorf("cannot connect to %s: %w", a.ip, err)
	}
	defer na.Close()
	subj := "bench.echo." + uuid.NewString()
	if _, err := na.Subscribe(subj, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return latencies{}, fmt.Errorf("cannot subscribe: %w", err)
	}
	if err := na.Flush(); err != nil {
		return latencies{}, fmt.Errorf("cannot flush: %w", err)
	}
	nb, err := nats.Connect(b.natsURL())
	if err != nil {
		return latencies{}, fmt.Errorf("cannot connect to %s: %w", b.ip, err)
	}
	defer nb.Close()
	body := []byte(`{"number":42}`)
	// The interest crosses the route asynchronously: wait for it.
	if err := poll(ctx, 5*time.Second, 10*time.Millisecond, func() bool {
		_, err := nb.Request(subj, body, 200*time.Millisecond)
		return err == nil
	}); err != nil {
		return latencies{}, fmt.Errorf("responder not reachable across the route: %w", err)
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := nb.Request(subj, body, 2*time.Second); err != nil {
			return latencies{}, fmt.Errorf("cannot request: %w", err)
		}
		ds = append(ds, time.Since(start))
	}
	return percentiles(ds), nil
}

// failover is figures 3 and 4: signal the master of a fresh cluster and time
// until a submission through another node is accepted in a higher term.
func failover(ctx context.Context, e *env, sig syscall.Signal) (float64, error) {
	cl, err := e.newCluster(ctx, 3)
	if err != nil {
		return 0, err
	}
	defer cl.close()
	master, worker, term, err := cl.master(ctx)
	if err != nil {
		return 0, err
	}
	c, err := client.Dial(worker.natsURL())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	reply, err := c.Submit(sctx, message.Submit{Number: 1})
	cancel()
	if err != nil || reply.Term != term {
		return 0, fmt.Errorf("first submission: term %d, want %d: %w", reply.Term, term, err)
	}
	// One short attempt per poll: the resolution is about 50 ms, not
	// Submit's own retry back-off.
	c.RequestTimeout = 50 * time.Millisecond
	start := time.Now()
	if err := master.p.signal(sig); err != nil {
		return 0, err
	}
	var took time.Duration
	err = poll(ctx, 30*time.Second, 5*time.Millisecond, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
		defer cancel()
		reply, err := c.Submit(sctx, message.Submit{Number: 2})
		if err == nil && reply.Term > term {
			took = time.Since(start)
			return true
		}
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("no new master dispatching: %w", err)
	}
	return took.Seconds(), nil
}

// startReady is figure 5a: exec of one more node until its /readyz is 200.
// The node is stopped cleanly afterwards.
func startReady(ctx context.Context, cl *cluster) (float64, error) {
	start := time.Now()
	nd, err := cl.addNode()
	if err != nil {
		return 0, err
	}
	defer func() {
		nd.p.stop(syscall.SIGTERM, 10*time.Second)
		cl.nodes = slices.DeleteFunc(cl.nodes, func(x *bnode) bool { return x == nd })
	}()
	if err := poll(ctx, readyTimeout, 5*time.Millisecond, func() bool {
		return cl.env.get(ctx, nd.url("/readyz")) == 200
	}); err != nil {
		return 0, fmt.Errorf("node %s not ready: %w", nd.ip, err)
	}
	return time.Since(start).Seconds(), nil
}

// idleUsage is figure 5b: the highest VmRSS (MiB) and CPU (% of one core)
// among the nodes of an idle cluster over d.
func idleUsage(ctx context.Context, cl *cluster, d time.Duration) (rssMiB, cpuPct float64, err error) {
	before := make([]int64, len(cl.nodes))
	for i, nd := range cl.nodes {
		if before[i], err = cpuTicks(nd.p.cmd.Process.Pid); err != nil {
			return 0, 0, err
		}
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("interrupted: %w", ctx.Err())
	case <-time.After(d):
	}
	elapsed := time.Since(start).Seconds()
	for i, nd := range cl.nodes {
		after, err := cpuTicks(nd.p.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		cpuPct = max(cpuPct, 100*float64(after-before[i])/clockTicks/elapsed)
		rss, err := vmRSS(nd.p.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		rssMiB = max(rssMiB, rss)
	}
	return rssMiB, cpuPct, nil
}

// cpuTicks is utime+stime from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the CPU time of %d: %w", pid, err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// vmRSS is VmRSS from /proc/<pid>/status, in MiB.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the memory of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("cannot parse VmRSS of %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// joinLeave is figures 6 and 7 on a fresh cluster of two: a third node
// joining (routed with every peer and seen by the master), then a worker
// leaving cleanly (gone from every peer's members).
func joinLeave(ctx context.Context, e *env) (join, leave float64, err error) {
	cl, err := e.newCluster(ctx, 2)
	if err != nil {
		return 0, 0, err
	}
	defer cl.close()
	start := time.Now()
	nd, err := cl.addNode()
	if err != nil {
		return 0, 0, err
	}
	err = poll(ctx, readyTimeout, 5*time.Millisecond, func() bool { return cl.joined(ctx, nd) })
	if err != nil {
		return 0, 0, fmt.Errorf("node %s did not join: %w", nd.ip, err)
	}
	join = time.Since(start).Seconds()

	master, _, _, err := cl.master(ctx)
	if err != nil {
		return 0, 0, err
	}
	var gone *bnode
	var others []*bnode
	for _, x := range cl.nodes {
		if x != master && gone == nil {
			gone = x
		} else {
			others = append(others, x)
		}
	}
	start = time.Now()
	if err := gone.p.signal(syscall.SIGTERM); err != nil {
		return 0, 0, err
	}
	err = poll(ctx, 30*time.Second, 5*time.Millisecond, func() bool {
		for _, x := range others {
			st, err := e.status(ctx, x)
			if err != nil || slices.ContainsFunc(st.Members, func(r registry.Record) bool { return r.ID == gone.id }) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, 0, fmt.Errorf("node %s not gone from its peers: %w", gone.ip, err)
	}
	return join, time.Since(start).Seconds(), nil
}

// joined: nd is routed with every peer, every peer with nd, and the master
// lists nd among its members.
func (c *cluster) joined(ctx context.Context, nd *bnode) bool {
	st, err := c.env.status(ctx, nd)
	if err != nil || st.ID == "" {
		return false
	}
	nd.id = st.ID
	for _, peer := range c.nodes {
		if peer == nd {
			continue
		}
		if !slices.Contains(st.Routes, peer.id) {
			return false
		}
		ps, err := c.env.status(ctx, peer)
		if err != nil || !slices.Contains(ps.Routes, nd.id) {
			return false
		}
		if ps.IsMaster && !slices.ContainsFunc(ps.Members, func(r registry.Record) bool { return r.ID == nd.id }) {
			return false
		}
	}
	return true
}
