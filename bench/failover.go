package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// failover signals the master of a fresh cluster and times until a
// submission through another node is accepted in a higher term.
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
	// One short attempt per poll, not Submit's own retries (it waits 50 ms
	// after "no responders"): the resolution is the poll interval, or the
	// attempt's 10 ms when the stopping master takes the request.
	c.RequestTimeout = 10 * time.Millisecond
	start := time.Now()
	if err := master.p.signal(sig); err != nil {
		return 0, err
	}
	var took time.Duration
	err = poll(ctx, 30*time.Second, 2*time.Millisecond, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
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

// startReady is exec of one more node until its /readyz is 200. The node
// is stopped cleanly afterwards.
func startReady(ctx context.Context, cl *cluster) (float64, error) {
	start := time.Now()
	nd, err := cl.addNode()
	if err != nil {
		return 0, err
	}
	defer cl.remove(nd, syscall.SIGTERM)
	if err := poll(ctx, readyTimeout, 5*time.Millisecond, func() bool {
		return cl.env.get(ctx, nd.url("/readyz")) == 200
	}); err != nil {
		return 0, fmt.Errorf("node %s not ready: %w", nd.ip, err)
	}
	return time.Since(start).Seconds(), nil
}

// usage is what each node of a cluster used over an idle window.
type usage struct {
	rssMiB []float64 // VmRSS at the end, per node
	mem    []mem     // and its parts
	cpuPct []float64 // % of one core over the window, per node
}

// idleUsage watches the nodes of cl for d.
func idleUsage(ctx context.Context, cl *cluster, d time.Duration) (usage, error) {
	var u usage
	before := make([]float64, len(cl.nodes))
	for i, nd := range cl.nodes {
		var err error
		if before[i], err = cpuMicros(nd.p.pid()); err != nil {
			return u, err
		}
	}
	start := time.Now()
	if err := sleep(ctx, d); err != nil {
		return u, err
	}
	elapsed := time.Since(start).Seconds()
	for i, nd := range cl.nodes {
		after, err := cpuMicros(nd.p.pid())
		if err != nil {
			return u, err
		}
		m, err := memory(nd.p.pid())
		if err != nil {
			return u, err
		}
		u.cpuPct = append(u.cpuPct, 100*(after-before[i])/1e6/elapsed)
		u.rssMiB = append(u.rssMiB, m.rss)
		u.mem = append(u.mem, m)
	}
	return u, nil
}
