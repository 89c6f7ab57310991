package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// scaleStart execs n nodes at once under a fresh prefix and times until
// every one answers /readyz 200 and until every one is routed to the n-1
// others. Each node is asked until it has got there, then no more; a round
// over the nodes starts every max(20 ms, n × 5 ms), so that the asking does
// not slow the start it measures.
func scaleStart(ctx context.Context, e *env, n int) (cl *cluster, ready, meshed float64, err error) {
	cl = e.emptyCluster()
	start := time.Now()
	for range n {
		if _, err := cl.addNode(); err != nil {
			cl.close()
			return nil, 0, 0, err
		}
	}
	notReady, notMeshed := slices.Clone(cl.nodes), slices.Clone(cl.nodes)
	err = poll(ctx, 3*time.Minute, max(20*time.Millisecond, time.Duration(n)*5*time.Millisecond), func() bool {
		notReady = slices.DeleteFunc(notReady, func(nd *bnode) bool {
			if e.get(ctx, nd.url("/readyz")) != http.StatusOK {
				return false
			}
			ready = time.Since(start).Seconds()
			return true
		})
		notMeshed = slices.DeleteFunc(notMeshed, func(nd *bnode) bool {
			if slices.Contains(notReady, nd) {
				return false
			}
			st, err := e.status(ctx, nd)
			if err != nil || len(st.Routes) < n-1 {
				return false
			}
			nd.id = st.ID
			meshed = time.Since(start).Seconds()
			return true
		})
		return len(notMeshed) == 0
	})
	if err != nil {
		cl.close()
		return nil, 0, 0, fmt.Errorf("%d-node cluster: %d nodes not ready, %d not meshed: %w", n, len(notReady), len(notMeshed), err)
	}
	return cl, ready, meshed, nil
}

// scaleFigures is what one cluster size measured.
type scaleFigures struct {
	ready, meshed         []float64 // per start
	routeConns, routePeer []float64 // per node
	idle, idleUnary       []float64 // etcd requests/s, per window
	idleStream, loaded    []float64
	idleMethods           map[string]float64 // whole idle window, by method
	loadedMethods         map[string]float64
	rss, cpu              []float64 // per node
	etcdRSS               []float64 // per window
	join, leave           []float64 // per run
}

// scaleConfig says how much each cluster size measures.
type scaleConfig struct {
	starts, joins int
	window        time.Duration // each of the 3 idle windows
	rate          int           // durable tasks/s in the loaded windows
}

// scale measures one cluster size.
func scale(ctx context.Context, e *env, n int, sc scaleConfig) (scaleFigures, error) {
	var f scaleFigures
	var cl *cluster
	for i := range sc.starts {
		c, ready, meshed, err := scaleStart(ctx, e, n)
		if err != nil {
			return f, err
		}
		progress("  %d nodes, start %d/%d: all ready %.2f s, fully meshed %.2f s", n, i+1, sc.starts, ready, meshed)
		f.ready, f.meshed = append(f.ready, ready), append(f.meshed, meshed)
		if i < sc.starts-1 {
			c.close()
		} else {
			cl = c
		}
	}
	defer cl.close()
	// Idle: let the start settle, then 3 windows.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return f, err
	}
	cpuBefore := make([]float64, len(cl.nodes))
	for i, nd := range cl.nodes {
		var err error
		if cpuBefore[i], err = cpuMicros(nd.p.pid()); err != nil {
			return f, err
		}
	}
	idleStart := time.Now()
	first, err := e.etcdCounts(ctx)
	if err != nil {
		return f, err
	}
	prev := first
	for range 3 {
		t := time.Now()
		if err := sleep(ctx, sc.window); err != nil {
			return f, err
		}
		now, err := e.etcdCounts(ctx)
		if err != nil {
			return f, err
		}
		r := rates(prev, now, time.Since(t).Seconds())
		f.idle, f.idleUnary, f.idleStream = append(f.idle, r.total), append(f.idleUnary, r.unary), append(f.idleStream, r.stream)
		rss, err := vmRSS(e.etcd.pid())
		if err != nil {
			return f, err
		}
		f.etcdRSS = append(f.etcdRSS, rss)
		prev = now
	}
	f.idleMethods = rates(first, prev, time.Since(idleStart).Seconds()).byMethod
	for i, nd := range cl.nodes {
		after, err := cpuMicros(nd.p.pid())
		if err != nil {
			return f, err
		}
		rss, err := vmRSS(nd.p.pid())
		if err != nil {
			return f, err
		}
		f.cpu = append(f.cpu, 100*(after-cpuBefore[i])/1e6/time.Since(idleStart).Seconds())
		f.rss = append(f.rss, rss)
	}
	progress("  idle etcd requests/s %s (%s); node RSS %s MiB, CPU %s %%", spreadString(f.idle), methodString(f.idleMethods), spreadString(f.rss), spreadString(f.cpu))

	// Routes after the idle windows: the route pools are complete by then.
	for _, nd := range cl.nodes {
		var rz routez
		if err := e.getJSON(ctx, nd.url("/nats/routez"), &rz); err != nil {
			return f, err
		}
		var names []string
		for _, r := range rz.Routes {
			names = append(names, r.RemoteName)
		}
		slices.Sort(names)
		f.routeConns = append(f.routeConns, float64(rz.NumRoutes))
		f.routePeer = append(f.routePeer, float64(len(slices.Compact(names))))
	}
	progress("  route connections per node %v, distinct peers %v", spreadString(f.routeConns), spreadString(f.routePeer))

	master, worker, _, err := cl.master(ctx)
	if err != nil {
		return f, err
	}
	if err := scaleLoad(ctx, e, worker, sc, &f); err != nil {
		return f, err
	}
	progress("  at %d durable tasks/s: etcd requests/s %s (%s)", sc.rate, spreadString(f.loaded), methodString(f.loadedMethods))

	for i := range sc.joins {
		nd, jt, err := cl.join(ctx, master, false)
		if err != nil {
			return f, err
		}
		l, err := cl.leave(ctx, nd)
		if err != nil {
			return f, err
		}
		progress("  join %d/%d into %d: %.3f s (%s; last: %s); leave %.3f s", i+1, sc.joins, n, jt.all.Seconds(), jt, jt.last(), l)
		f.join, f.leave = append(f.join, jt.all.Seconds()), append(f.leave, l)
	}
	return f, nil
}

// scaleLoad submits durable tasks at sc.rate through worker for 3 windows
// of sc.window and records etcd's request rate in each.
func scaleLoad(ctx context.Context, e *env, worker *bnode, sc scaleConfig, f *scaleFigures) error {
	c, err := client.Dial(worker.natsURL())
	if err != nil {
		return err
	}
	defer c.Close()
	lctx, cancel := context.WithCancel(ctx)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	wg.Go(func() {
		t := time.NewTicker(time.Second / time.Duration(sc.rate))
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(lctx, 5*time.Second)
				defer cancel()
				if _, err := c.Submit(sctx, message.Submit{Number: 1}); err != nil && lctx.Err() == nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	if err := sleep(ctx, time.Second); err != nil { // reach the steady rate
		return err
	}
	first, err := e.etcdCounts(ctx)
	if err != nil {
		return err
	}
	prev, start := first, time.Now()
	for range 3 {
		t := time.Now()
		if err := sleep(ctx, sc.window*3/4); err != nil {
			return err
		}
		now, err := e.etcdCounts(ctx)
		if err != nil {
			return err
		}
		f.loaded = append(f.loaded, rates(prev, now, time.Since(t).Seconds()).total)
		prev = now
	}
	f.loadedMethods = rates(first, prev, time.Since(start).Seconds()).byMethod
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		return fmt.Errorf("%d of the submissions at %d/s failed", failed, sc.rate)
	}
	return nil
}

// spreadString is "median (min–max)".
func spreadString(xs []float64) string {
	m, lo, hi := spread(xs)
	return fmt.Sprintf("%.4g (%.4g–%.4g)", m, lo, hi)
}

// methodString lists the busiest etcd methods, "Method 12.3/s".
func methodString(m map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var kvs []kv
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
	var parts []string
	for i, x := range kvs {
		if i == 4 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f/s", x.k, x.v))
	}
	return strings.Join(parts, ", ")
}
