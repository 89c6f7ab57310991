package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
)

// expiryFigures measures what the expiry of many done records costs the
// requests that run meanwhile (issue 15). Each run, on a fresh etcd and a
// fresh 3-node cluster with --result-retention cfg.expiryRetention:
//
//   - fill: cfg.expiryN durable tasks in batches; etcd deletes their done
//     records about the retention later, lease by lease, as meshpool
//     attached them;
//   - probes, from the end of the fill until every filled record is gone,
//     under a background durable load: serial etcd puts and sequential
//     durable round trips, each sample counted before the expiry (no
//     record can have expired yet) or during it;
//   - baseline, one lease: as many keys of a record's size put under one
//     lease (what one time bucket's lease held before leases were capped,
//     at 10,000 tasks/s), and the same probes around its expiry.
func expiryFigures(ctx context.Context, e *env, cfg config, r *report) error {
	rows := map[string]*row{}
	var names []string
	cell := func(name, col, unit, format string) *row {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		k := name + "\x00" + col
		if rows[k] == nil {
			rows[k] = &row{group: "expiry", key: "expiry", name: name, col: col, unit: unit, format: format}
		}
		return rows[k]
	}
	ours, one := "meshpool's leases", fmt.Sprintf("one lease of %d keys", cfg.expiryN)
	cols := []string{ours + ": before", ours + ": during", ours + ": during ÷ before", one + ": before", one + ": during", one + ": during ÷ before"}
	add := func(name, layout string, before, during float64) {
		b, d := cell(name, layout+": before", "ms", "%.2f"), cell(name, layout+": during", "ms", "%.2f")
		x := cell(name, layout+": during ÷ before", "ms", "%.1f×")
		b.runs, d.runs = append(b.runs, before), append(d.runs, during)
		x.runs = append(x.runs, during/before)
	}
	addWindows := func(layout string, w expiryWindows) {
		for _, p := range []struct {
			name string
			s    [2][]time.Duration
		}{{"serial etcd put", w.puts}, {"durable submit → result", w.trips}} {
			b, d := latencyStats(p.s[0]), latencyStats(p.s[1])
			add(p.name+": p50", layout, b.p50, d.p50)
			add(p.name+": p99", layout, b.p99, d.p99)
			add(p.name+": max", layout, b.max, d.max)
		}
	}
	for i := range cfg.runs {
		progress("expiry: run %d/%d: a fresh etcd; %d durable tasks kept %s, then %d keys under one lease", i+1, cfg.runs, cfg.expiryN, cfg.expiryRetention, cfg.expiryN)
		if err := e.restartEtcd(ctx); err != nil {
			return err
		}
		cl, err := e.newCluster(ctx, 3, "--result-retention", cfg.expiryRetention.String())
		if err != nil {
			return err
		}
		res, err := expiryRun(ctx, cl, cfg, i)
		cl.close()
		if err != nil {
			return err
		}
		addWindows(ours, res.ours)
		addWindows(one, res.one)
		for _, f := range []struct {
			name, format string
			ours, one    float64
		}{
			{"leases holding the records", "%.0f", float64(res.ours.leases), float64(res.one.leases)},
			{"most keys under one lease", "%.0f", float64(res.ours.most), float64(res.one.most)},
		} {
			a, b := cell(f.name, ours+": before", "keys or leases", f.format), cell(f.name, one+": before", "keys or leases", f.format)
			a.runs, b.runs = append(a.runs, f.ours), append(b.runs, f.one)
		}
		progress("  %s: put p99 %.1f → %.1f ms, max %.1f → %.1f ms; %d leases, ≤ %d keys each",
			ours, latencyStats(res.ours.puts[0]).p99, latencyStats(res.ours.puts[1]).p99,
			latencyStats(res.ours.puts[0]).max, latencyStats(res.ours.puts[1]).max, res.ours.leases, res.ours.most)
		progress("  %s: put p99 %.1f → %.1f ms, max %.1f → %.1f ms",
			one, latencyStats(res.one.puts[0]).p99, latencyStats(res.one.puts[1]).p99,
			latencyStats(res.one.puts[0]).max, latencyStats(res.one.puts[1]).max)
	}
	for _, name := range names {
		for _, col := range cols {
			if x := rows[name+"\x00"+col]; x != nil {
				r.add(*x)
			}
		}
	}
	r.note("expiry", "Each run: %d durable tasks done in batches through a 3-node cluster with `--result-retention %s`, then, from the end "+
		"of that fill until the last of their records has expired, one goroutine doing serial etcd puts and one doing sequential durable "+
		"submit → result round trips through a worker, beside a background durable load (%d in flight). *before*: samples that started "+
		"before any filled record could expire (the retention after the first completion); *during*: from then until the retention plus a "+
		"time bucket after the last completion. *one lease*: in the same run and etcd, %d keys of %d bytes put under one lease, as one time "+
		"bucket's lease held them before leases were capped (10,000 tasks/s for 10 s with the default retention), and the same probes "+
		"around its expiry. The leases rows (in the *before* columns) count the leases the records were attached to and the most keys one of "+
		"them held (etcd's LeaseTimeToLive with keys).", cfg.expiryN, cfg.expiryRetention, expiryBackground, cfg.expiryN, len(recordValue))
	return nil
}

// expiryBackground is the background durable load's submissions in flight.
const expiryBackground = 4

// recordValue is about the size of a done record of the demo kind.
var recordValue = strings.Repeat("r", 300)

// expiryWindows are the probes' samples before ([0]) and during ([1]) one
// expiry, and the leases the expiring keys were under.
type expiryWindows struct {
	puts, trips [2][]time.Duration
	leases      int // leases the keys were attached to
	most        int // keys under the fullest of them
}

// expiryResult is one run of expiryFigures.
type expiryResult struct{ ours, one expiryWindows }

// latencyStat is p50, p99 and max in ms.
type latencyStat struct{ p50, p99, max float64 }

func latencyStats(ds []time.Duration) latencyStat {
	if len(ds) == 0 {
		return latencyStat{}
	}
	p := percentiles(ds) // sorts ds
	return latencyStat{p.p50, p.p99, float64(ds[len(ds)-1]) / float64(time.Millisecond)}
}

// expiryRun is one run of expiryFigures on cl.
func expiryRun(ctx context.Context, cl *cluster, cfg config, run int) (expiryResult, error) {
	var res expiryResult
	ro, err := cl.roles(ctx)
	if err != nil {
		return res, err
	}
	c, err := client.Dial(ro.worker.natsURL())
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Follow(); err != nil {
		return res, err
	}

	// Fill. A record lives at least the retention after its completion,
	// and at most a bucket more.
	bucket := min(max(cfg.expiryRetention/10, time.Second), time.Minute)
	began := time.Now()
	for done := 0; done < cfg.expiryN; done += growthChunk {
		n := min(growthChunk, cfg.expiryN-done)
		lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		rep, err := c.Load(lctx, client.LoadSpec{N: n, Concurrency: cfg.batchInflight, Batch: cfg.batch, Wait: true, Durability: message.DurabilityDurable})
		cancel()
		if err != nil {
			return res, fmt.Errorf("fill: %w", err)
		}
		if rep.Missing > 0 || rep.Accepted < n {
			return res, fmt.Errorf("fill: accepted %d of %d, %d results missing", rep.Accepted, n, rep.Missing)
		}
	}
	filled := time.Now()
	firstExpiry, lastExpiry := began.Add(cfg.expiryRetention), filled.Add(cfg.expiryRetention+bucket+time.Second)
	progress("  fill: %d durable tasks in %s; their records expire from %s to %s from now", cfg.expiryN, filled.Sub(began).Round(time.Second),
		time.Until(firstExpiry).Round(time.Second), time.Until(lastExpiry).Round(time.Second))
	if time.Until(firstExpiry) < 3*time.Second {
		return res, fmt.Errorf("the fill took %s, too long to measure before the expiry: raise -expiry-retention", filled.Sub(began).Round(time.Second))
	}
	tasks := keyspace.Tasks(cl.prefix)
	if res.ours.leases, res.ours.most, err = leaseLayout(ctx, cl.etcdClient(), tasks); err != nil {
		return res, err
	}
	// Over at the last record's time, once etcd has revoked most of the
	// leases (a loaded etcd may revoke them seconds late), or a minute on.
	var counted time.Time
	mostGone := func() bool {
		if time.Since(counted) < time.Second {
			return false
		}
		counted = time.Now()
		n, err := countKeys(ctx, cl.etcdClient(), tasks)
		return err == nil && n <= int64(cfg.expiryN/2)
	}
	if res.ours, err = probeExpiry(ctx, cl, ro, c, res.ours, firstExpiry, func() bool {
		return time.Now().After(lastExpiry) && mostGone() || time.Now().After(lastExpiry.Add(time.Minute))
	}); err != nil {
		return res, err
	}
	if n, err := countKeys(ctx, cl.etcdClient(), tasks); err != nil {
		return res, err
	} else if n > int64(cfg.expiryN/2) {
		return res, fmt.Errorf("%d task records still in etcd a minute after the expiry of %d", n, cfg.expiryN)
	}

	// Baseline: every key under one lease.
	cli := cl.etcdClient()
	prefix := fmt.Sprintf("/bench/expiry/%d/", run)
	const ttl = 20 * time.Second
	lease, err := cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return res, fmt.Errorf("cannot grant the baseline lease: %w", err)
	}
	granted := time.Now()
	if err := putUnder(ctx, cli, prefix, cfg.expiryN, lease.ID); err != nil {
		return res, err
	}
	if time.Until(granted.Add(ttl)) < 3*time.Second {
		return res, fmt.Errorf("putting %d keys took %s, too long to measure before their lease expires", cfg.expiryN, time.Since(granted).Round(time.Second))
	}
	res.one.leases, res.one.most = 1, cfg.expiryN
	gone := func() bool {
		n, err := countKeys(ctx, cli, prefix)
		return err == nil && n == 0
	}
	res.one, err = probeExpiry(ctx, cl, ro, c, res.one, granted.Add(ttl), func() bool {
		return time.Now().After(granted.Add(ttl+time.Second)) && gone() || time.Now().After(granted.Add(ttl+time.Minute))
	})
	if err != nil {
		return res, err
	}
	if !gone() {
		return res, fmt.Errorf("the baseline's %d keys are not gone a minute after their lease's TTL", cfg.expiryN)
	}
	return res, nil
}

// leaseLayout is how many leases the keys under prefix are attached to, and
// the most keys one of them holds.
func leaseLayout(ctx context.Context, cli *clientv3.Client, prefix string) (leases, most int, err error) {
	resp, err := cli.Leases(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list etcd's leases: %w", err)
	}
	for _, l := range resp.Leases {
		ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			return 0, 0, fmt.Errorf("cannot read lease %x: %w", l.ID, err)
		}
		n := 0
		for _, k := range ttl.Keys {
			if strings.HasPrefix(string(k), prefix) {
				n++
			}
		}
		if n > 0 {
			leases++
			most = max(most, n)
		}
	}
	return leases, most, nil
}

// countKeys is the number of keys under prefix.
func countKeys(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("cannot count etcd's keys: %w", err)
	}
	return resp.Count, nil
}

// putUnder puts n keys of recordValue under prefix, attached to lease, in
// txns of 128 puts, 8 at once.
func putUnder(ctx context.Context, cli *clientv3.Client, prefix string, n int, lease clientv3.LeaseID) error {
	const batch, workers = 128, 8
	next := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Go(func() {
			for from := range next {
				ops := make([]clientv3.Op, 0, batch)
				for i := from; i < min(from+batch, n); i++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%08d", prefix, i), recordValue, clientv3.WithLease(lease)))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for from := 0; from < n && ctx.Err() == nil; from += batch {
		next <- from
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot put the baseline's keys: %w", err)
	}
	return ctx.Err()
}

// probeExpiry runs the probes, with a background durable load through c,
// until over reports true, and adds their samples to w: those that started
// before expiry to before, the others to during.
func probeExpiry(ctx context.Context, cl *cluster, ro roles, c *client.Client, w expiryWindows, expiry time.Time, over func() bool) (expiryWindows, error) {
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil && pctx.Err() == nil {
			firstErr = err
		}
		stop()
	}
	sample := func(s *[2][]time.Duration, one func() error) {
		for pctx.Err() == nil {
			start := time.Now()
			if err := one(); err != nil {
				fail(err)
				return
			}
			i := 0
			if !start.Before(expiry) {
				i = 1
			}
			s[i] = append(s[i], time.Since(start))
		}
	}
	cli := cl.etcdClient()
	n := 0
	wg.Go(func() {
		sample(&w.puts, func() error {
			n++
			if _, err := cli.Put(pctx, fmt.Sprintf("/bench/probe/%d", n%100), putValue); err != nil {
				return fmt.Errorf("probe put: %w", err)
			}
			return nil
		})
	})
	wg.Go(func() {
		sample(&w.trips, func() error {
			id := uuid.NewString()
			sctx, cancel := context.WithTimeout(pctx, 30*time.Second)
			defer cancel()
			if _, err := c.Submit(sctx, message.Submit{UUID: id, Number: 7, Durability: message.DurabilityDurable}); err != nil {
				return fmt.Errorf("probe submit: %w", err)
			}
			res, err := c.Wait(sctx, id)
			if err != nil {
				return fmt.Errorf("probe wait: %w", err)
			}
			if res.Error != "" {
				return fmt.Errorf("probe task %s failed: %s", id, res.Error)
			}
			return nil
		})
	})
	bg, err := client.Dial(ro.worker.natsURL())
	if err != nil {
		return w, err
	}
	defer bg.Close()
	wg.Go(func() {
		for pctx.Err() == nil {
			_, err := bg.Load(pctx, client.LoadSpec{N: 1000, Concurrency: expiryBackground, Wait: true, Durability: message.DurabilityDurable})
			if err != nil && pctx.Err() == nil {
				fail(fmt.Errorf("background load: %w", err))
			}
		}
	})
	err = poll(pctx, 10*time.Minute, 200*time.Millisecond, over)
	stop()
	wg.Wait()
	if firstErr != nil {
		return w, firstErr
	}
	if err != nil {
		return w, err
	}
	if len(w.puts[0]) == 0 || len(w.puts[1]) == 0 || len(w.trips[0]) == 0 || len(w.trips[1]) == 0 {
		return w, errors.New("no probe before or during the expiry")
	}
	return w, nil
}
