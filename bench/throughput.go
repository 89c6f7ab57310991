package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// roles names the three nodes of the shared cluster: the load generator
// connects to worker.
type roles struct {
	cl                    *cluster
	master, worker, other *bnode
}

// processKinds are the processes whose CPU time a load is charged with.
var processKinds = []string{"master", "worker with the client", "other worker", "etcd", "load generator"}

// cpu reads the CPU time of every process kind, in µs; etcd's is that of
// all its members.
func (r roles) cpu() (map[string]float64, error) {
	m := map[string]float64{}
	for kind, pids := range map[string][]int{"master": {r.master.p.pid()}, "worker with the client": {r.worker.p.pid()},
		"other worker": {r.other.p.pid()}, "etcd": r.cl.etcdPids()} {
		for _, pid := range pids {
			us, err := cpuMicros(pid)
			if err != nil {
				return nil, err
			}
			m[kind] += us
		}
	}
	us, err := selfCPUMicros()
	if err != nil {
		return nil, err
	}
	m["load generator"] = us
	return m, nil
}

// loadResult is one client.Load through the worker.
type loadResult struct {
	rate    float64            // results per second
	took    time.Duration      // first submission to last result
	cpu     map[string]float64 // µs of CPU per task, by process kind
	etcdTxn float64            // Txn requests etcd received during the load
	busy    float64            // % of all cores in use on the whole machine
	ours    float64            // % of all cores used by the processes of cpu
}

// load runs client.Load with n tasks, inflight submissions at once, of
// durability d and kind (the demo's, a random number each, when ""),
// through the worker and waits for every result. With batch > 1 each
// submission is a batch of that many tasks (client.SubmitMany).
func load(ctx context.Context, r roles, n, inflight, batch int, d, kind string) (loadResult, error) {
	var res loadResult
	c, err := client.Dial(r.worker.natsURL())
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Follow(); err != nil {
		return res, err
	}
	before, err := r.cpu()
	if err != nil {
		return res, err
	}
	txnBefore, err := r.cl.etcdCounts(ctx)
	if err != nil {
		return res, err
	}
	busy0, total0, err := machineTicks()
	if err != nil {
		return res, err
	}
	began := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rep, err := c.Load(lctx, client.LoadSpec{N: n, Concurrency: inflight, Batch: batch, Wait: true, Durability: d, Kind: kind})
	if err != nil {
		return res, fmt.Errorf("cannot load: %w", err)
	}
	if rep.Missing > 0 || rep.Accepted < n {
		return res, fmt.Errorf("load: accepted %d of %d, %d results missing", rep.Accepted, n, rep.Missing)
	}
	after, err := r.cpu()
	if err != nil {
		return res, err
	}
	elapsed := time.Since(began)
	busy1, total1, err := machineTicks()
	if err != nil {
		return res, err
	}
	txnAfter, err := r.cl.etcdCounts(ctx)
	if err != nil {
		return res, err
	}
	res.rate, res.took = float64(rep.Results)/rep.Took.Seconds(), rep.Took
	res.cpu = map[string]float64{}
	var used float64
	for k, v := range after {
		res.cpu[k] = (v - before[k]) / float64(n)
		used += v - before[k]
	}
	res.busy = 100 * (busy1 - busy0) / (total1 - total0)
	res.ours = 100 * used / 1e6 / elapsed.Seconds() / float64(runtime.NumCPU())
	res.etcdTxn = txnAfter["unary Txn"] - txnBefore["unary Txn"]
	return res, nil
}

// durableLoad compacts etcd's history, so that no run pays for the last
// one's revisions, then runs the durable load of n tasks of kind.
func durableLoad(ctx context.Context, r roles, cfg config, n int, kind string) (loadResult, error) {
	if err := compact(ctx, r.cl.etcdClient()); err != nil {
		return loadResult{}, err
	}
	d, err := load(ctx, r, n, cfg.inflight, 1, message.DurabilityDurable, kind)
	if err != nil {
		return d, fmt.Errorf("durable load: %w", err)
	}
	return d, nil
}

// natsEcho subscribes a responder on a's client port and connects a
// requester to b's, waiting until the responder's interest has crossed the
// route. The caller closes both connections.
func natsEcho(ctx context.Context, a, b *bnode) (na, nb *nats.Conn, subj string, err error) {
	na, err = nats.Connect(a.natsURL())
	if err != nil {
		return nil, nil, "", fmt.Errorf("cannot connect to %s: %w", a.ip, err)
	}
	subj = "bench.echo." + uuid.NewString()
	if _, err := na.Subscribe(subj, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		na.Close()
		return nil, nil, "", fmt.Errorf("cannot subscribe: %w", err)
	}
	if err := na.Flush(); err != nil {
		na.Close()
		return nil, nil, "", fmt.Errorf("cannot flush: %w", err)
	}
	nb, err = nats.Connect(b.natsURL())
	if err != nil {
		na.Close()
		return nil, nil, "", fmt.Errorf("cannot connect to %s: %w", b.ip, err)
	}
	if err := poll(ctx, 5*time.Second, 10*time.Millisecond, func() bool {
		_, err := nb.Request(subj, echoBody, 200*time.Millisecond)
		return err == nil
	}); err != nil {
		na.Close()
		nb.Close()
		return nil, nil, "", fmt.Errorf("responder not reachable across the route: %w", err)
	}
	return na, nb, subj, nil
}

// echoBody is about the size of a submission.
var echoBody = []byte(`{"uuid":"2f1c6a1e-8d0b-4f6e-9a7c-3b5d2e4f6a8b","number":42,"durability":"none"}`)

// natsThroughput is the baseline of non-durable throughput: inflight
// goroutines doing request-reply for d, a responder on a's client port and
// the requests through b's, so each crosses the same route as a submission.
func natsThroughput(ctx context.Context, a, b *bnode, inflight int, d time.Duration) (float64, error) {
	na, nb, subj, err := natsEcho(ctx, a, b)
	if err != nil {
		return 0, err
	}
	defer na.Close()
	defer nb.Close()
	var (
		n        atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range inflight {
		wg.Go(func() {
			for time.Since(start) < d && ctx.Err() == nil {
				if _, err := nb.Request(subj, echoBody, 5*time.Second); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("cannot request: %w", firstErr)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// submitLatency is sequential Submit + Wait, one task in flight, of
// durability d and kind (the demo's when ""). A result with an error fails
// the run.
func submitLatency(ctx context.Context, worker *bnode, n int, d, kind string) (latencies, error) {
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
		sub := message.Submit{UUID: id, Kind: kind, Durability: d}
		if kind == "" {
			sub.Number = int64(i)
		}
		start := time.Now()
		if _, err := c.Submit(sctx, sub); err != nil {
			return 0, fmt.Errorf("cannot submit: %w", err)
		}
		res, err := c.Wait(sctx, id)
		if err != nil {
			return 0, fmt.Errorf("cannot wait: %w", err)
		}
		took := time.Since(start)
		if res.Error != "" {
			return 0, fmt.Errorf("task %s failed: %s", id, res.Error)
		}
		return took, nil
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

// natsRoundTrip is the latency baseline: sequential request-reply across
// one route, a responder on a's client port, requests through b's.
func natsRoundTrip(ctx context.Context, a, b *bnode, n int) (latencies, error) {
	na, nb, subj, err := natsEcho(ctx, a, b)
	if err != nil {
		return latencies{}, err
	}
	defer na.Close()
	defer nb.Close()
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := nb.Request(subj, echoBody, 2*time.Second); err != nil {
			return latencies{}, fmt.Errorf("cannot request: %w", err)
		}
		ds = append(ds, time.Since(start))
	}
	return percentiles(ds), nil
}
