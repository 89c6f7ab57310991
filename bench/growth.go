package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/message"
)

// growthChunk is the most tasks of one pre-load.
const growthChunk = 50_000

// growthFigures measures how durable throughput changes as etcd holds more
// done records: each run starts a fresh etcd and a fresh 3-node cluster,
// runs the durable load of the throughput group (fresh), does cfg.growthN
// more durable tasks through the same cluster with client.Load (their done
// records stay in etcd for the result retention, 10 minutes by default),
// and runs the durable load again (later). With cfg.profiles set, it
// writes CPU profiles of the master and of etcd during both loads there.
func growthFigures(ctx context.Context, e *env, cfg config, r *report) error {
	later := fmt.Sprintf("after %d more done tasks", cfg.growthN)
	rows := map[string]*row{}
	cell := func(name, col, unit, format string) *row {
		k := name + "\x00" + col
		if rows[k] == nil {
			rows[k] = &row{group: "growth", key: "growth", name: name, col: col, unit: unit, format: format}
		}
		return rows[k]
	}
	var names []string // in order
	add := func(name, unit, format string, fresh, after float64, ratio bool) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		f, a := cell(name, "fresh etcd", unit, format), cell(name, later, unit, format)
		f.runs, a.runs = append(f.runs, fresh), append(a.runs, after)
		if ratio {
			x := cell(name, "later ÷ fresh", "", "%.2f×")
			x.unit = unit
			x.runs = append(x.runs, after/fresh)
		}
	}
	for i := range cfg.runs {
		progress("growth: run %d/%d: a fresh etcd; %d durable tasks, %d more, %d again", i+1, cfg.runs, cfg.durableN, cfg.growthN, cfg.durableN)
		if err := e.restartEtcd(ctx); err != nil {
			return err
		}
		cl, err := e.newCluster(ctx, 3, "--pprof")
		if err != nil {
			return err
		}
		res, err := growthRun(ctx, cl, cfg, i)
		cl.close()
		if err != nil {
			return err
		}
		fresh, after := res[0], res[1]
		add("durable throughput", "tasks/s", "%.0f", fresh.rate, after.rate, true)
		var fSum, aSum float64
		for _, k := range processKinds {
			add("CPU: "+k, "µs/task", "%.1f", fresh.cpu[k], after.cpu[k], true)
			fSum, aSum = fSum+fresh.cpu[k], aSum+after.cpu[k]
		}
		add("CPU: all processes", "µs/task", "%.1f", fSum, aSum, true)
		add("these processes together, % of all cores", "%", "%.1f", fresh.ours, after.ours, false)
		add("the whole machine (anyone's processes), % of all cores", "%", "%.1f", fresh.busy, after.busy, false)
		add("keys under the cluster's etcd prefix, after the load", "keys", "%.0f", fresh.keys, after.keys, false)
		add("etcd's file (db size), after the load", "MiB", "%.1f", fresh.db, after.db, false)
		add("of which in use (db size in use)", "MiB", "%.1f", fresh.inUse, after.inUse, false)
		progress("  fresh %.0f tasks/s, %.0f µs/task; later %.0f tasks/s, %.0f µs/task (%.2f×); %0.f keys, etcd file %.0f MiB",
			fresh.rate, fSum, after.rate, aSum, after.rate/fresh.rate, after.keys, after.db)
	}
	for _, name := range names {
		for _, col := range []string{"fresh etcd", later, "later ÷ fresh"} {
			if x := rows[name+"\x00"+col]; x != nil {
				r.add(*x)
			}
		}
	}
	r.note("growth", "The %d tasks between the two loads are real durable tasks of the demo kind, done through the same cluster "+
		"by client.Load in batches (client.SubmitMany, %d tasks a batch, %d batches in flight, at most %d tasks per Load); each leaves its done "+
		"record in etcd for the result retention (10 minutes). Each run starts on a fresh etcd and a fresh cluster.", cfg.growthN, cfg.batch, cfg.batchInflight, growthChunk)
	return nil
}

// growthLoad is one durable load of a growth run and etcd's size after it.
type growthLoad struct {
	loadResult
	keys, db, inUse float64
}

// growthRun is one run of growthFigures on cl: the fresh load, the
// pre-load, the later load.
func growthRun(ctx context.Context, cl *cluster, cfg config, run int) ([2]growthLoad, error) {
	var out [2]growthLoad
	ro, err := cl.roles(ctx)
	if err != nil {
		return out, err
	}
	measure := func(which string) (growthLoad, error) {
		if err := compact(ctx, cl.env.cli); err != nil { // as durableLoad, before the profiles start
			return growthLoad{}, err
		}
		stop := cl.env.profiles(ctx, cfg.profiles, fmt.Sprintf("run%d-%s", run+1, which), ro.master)
		d, err := load(ctx, ro, cfg.durableN, cfg.inflight, 1, message.DurabilityDurable, "")
		stop()
		if err != nil {
			return growthLoad{}, fmt.Errorf("durable load: %w", err)
		}
		g := growthLoad{loadResult: d}
		g.keys, g.db, g.inUse, err = etcdSize(ctx, cl.env, cl.prefix)
		return g, err
	}
	if out[0], err = measure("fresh"); err != nil {
		return out, err
	}
	began := time.Now()
	for done := 0; done < cfg.growthN; done += growthChunk {
		n := min(growthChunk, cfg.growthN-done)
		if _, err := load(ctx, ro, n, cfg.batchInflight, cfg.batch, message.DurabilityDurable, ""); err != nil {
			return out, fmt.Errorf("pre-load: %w", err)
		}
	}
	progress("  pre-load: %d durable tasks in %s", cfg.growthN, time.Since(began).Round(time.Second))
	out[1], err = measure("later")
	return out, err
}

// etcdSize is the number of keys under prefix and etcd's file size and the
// part of it in use, in MiB.
func etcdSize(ctx context.Context, e *env, prefix string) (keys, db, inUse float64, err error) {
	resp, err := e.cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot count etcd's keys: %w", err)
	}
	st, err := e.cli.Status(ctx, e.etcdEndpoint)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cannot read etcd's status: %w", err)
	}
	return float64(resp.Count), float64(st.DbSize) / (1 << 20), float64(st.DbSizeInUse) / (1 << 20), nil
}

// profiles starts CPU profiles of nd (a node started with --pprof) and of
// the env's etcd (--enable-pprof) into dir, named after what, and returns
// a func that waits for them. With dir "" it does nothing. A profile lasts
// profileTime; one that fails is reported on stderr and skipped.
func (e *env) profiles(ctx context.Context, dir, what string, nd *bnode) (wait func()) {
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{}, 2)
	get := func(url, file string) {
		defer func() { done <- struct{}{} }()
		if err := fetchProfile(ctx, url, filepath.Join(dir, file)); err != nil {
			progress("  profile %s: %v", file, err)
		}
	}
	q := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(profileTime/time.Second))
	go get(nd.url(q), what+"-master.pprof")
	go get(e.etcdURL+q, what+"-etcd.pprof")
	return func() { <-done; <-done }
}

// profileTime is how long a profile of a growth load lasts: shorter than
// the load of 30,000 tasks.
const profileTime = 3 * time.Second

// fetchProfile writes the answer of GET url to file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: profileTime + 10*time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
