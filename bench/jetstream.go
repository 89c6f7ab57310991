package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jsSpec is one JetStream baseline.
type jsSpec struct {
	name     string // in the report's table
	short    string // in progress lines and sentences
	replicas int
	sync     bool // SyncAlways, with the store on disk (diskDir)
}

// jobs is how many jobs one load of the baseline publishes: enough for a
// second or more. Synced, that is -durable-n (about 1,500 jobs/s here).
func (sp jsSpec) jobs(cfg config) int {
	if sp.sync {
		return cfg.durableN
	}
	return cfg.jsN
}

// jsSpecs are the baselines, in the order each run measures them.
func jsSpecs() []jsSpec {
	return []jsSpec{
		{"JetStream R1, file store in /dev/shm", jsR1Short, 1, false},
		{"JetStream R3 (3 servers, raft), file store in /dev/shm", jsR3Short, 3, false},
		{fmt.Sprintf("JetStream R1, every write synced (SyncAlways), file store on disk (%s)", diskDir), "JetStream R1 synced", 1, true},
	}
}

// jsRun is one baseline's figures in one run.
type jsRun struct {
	load jsLoadResult
	lat  latencies
}

// jetstreamFigures measures each JetStream baseline cfg.runs times, the
// baselines in turn within each run, then meshpool durable on a 3-member
// etcd (replicatedMeasure), so that it pairs with R3 run by run, and sets
// them beside meshpool's figures of this bench run. A baseline that fails is listed as not
// measured; the others go on.
func jetstreamFigures(ctx context.Context, e *env, cfg config, r *report) {
	specs := jsSpecs()
	got := make([]series, len(specs))
	byProc := make([]map[string][]float64, len(specs))
	failed := make([]bool, len(specs))
	for k, sp := range specs {
		got[k].name, got[k].short = sp.name, sp.short
		byProc[k] = map[string][]float64{}
	}
	rep := series{name: replicatedName, short: replicatedShort}
	repProc := map[string][]float64{}
	repFailed := false
	for i := range cfg.runs {
		for k, sp := range specs {
			if failed[k] || ctx.Err() != nil {
				continue
			}
			progress("jetstream: run %d/%d, %s (%d jobs, %d in flight; %d sequential)", i+1, cfg.runs, sp.short, sp.jobs(cfg), cfg.inflight, cfg.latency)
			x, err := jsMeasure(ctx, e, cfg, sp)
			if err != nil {
				r.fail(sp.name, err)
				failed[k] = true
				continue
			}
			var sum float64
			for _, kind := range jsProcessKinds {
				sum += x.load.cpu[kind]
				byProc[k][kind] = append(byProc[k][kind], x.load.cpu[kind])
			}
			progress("  %.0f jobs/s in %.2f s, %.0f µs/job (servers %.0f, workers %.0f, load generator %.0f); p50 %.2f ms p99 %.2f ms",
				x.load.rate, x.load.took.Seconds(), sum, x.load.cpu["servers"], x.load.cpu["workers"], x.load.cpu["load generator"], x.lat.p50, x.lat.p99)
			if x.load.took < time.Second {
				progress("  WARNING: a load took %.2f s, under 1 s: not a steady state; raise -js-n", x.load.took.Seconds())
				r.note("jetstream", "Warning: the load of %s in run %d took %.2f s, under 1 s, so it is not a steady state; raise -js-n.", sp.short, i+1, x.load.took.Seconds())
			}
			s := &got[k]
			s.rate, s.cpu = append(s.rate, x.load.rate), append(s.cpu, sum)
			s.p50, s.p99 = append(s.p50, x.lat.p50), append(s.p99, x.lat.p99)
		}
		if repFailed || ctx.Err() != nil {
			continue
		}
		progress("jetstream: run %d/%d, %s (%d tasks, %d in flight; %d sequential)", i+1, cfg.runs, replicatedName, cfg.durableN, cfg.inflight, cfg.latency)
		d, lat, err := replicatedMeasure(ctx, e, cfg)
		if err != nil {
			r.fail(replicatedName, err)
			repFailed = true
			continue
		}
		var sum float64
		for _, kind := range processKinds {
			sum += d.cpu[kind]
			repProc[kind] = append(repProc[kind], d.cpu[kind])
		}
		progress("  %.0f tasks/s in %.2f s, %.0f µs/task (master %.0f, etcd's 3 members %.0f); p50 %.2f ms p99 %.2f ms",
			d.rate, d.took.Seconds(), sum, d.cpu["master"], d.cpu["etcd"], lat.p50, lat.p99)
		rep.rate, rep.cpu = append(rep.rate, d.rate), append(rep.cpu, sum)
		rep.p50, rep.p99 = append(rep.p50, lat.p50), append(rep.p99, lat.p99)
	}
	var by []string
	for k := range specs {
		if failed[k] {
			got[k] = series{name: specs[k].name, short: specs[k].short}
			continue
		}
		if len(got[k].rate) == 0 {
			continue
		}
		var parts []string
		for _, kind := range jsProcessKinds {
			parts = append(parts, fmt.Sprintf("%s %.1f", kind, median(byProc[k][kind])))
		}
		by = append(by, specs[k].short+": "+strings.Join(parts, ", "))
	}
	if len(rep.rate) > 0 {
		var parts []string
		for _, kind := range processKinds {
			parts = append(parts, fmt.Sprintf("%s %.1f", kind, median(repProc[kind])))
		}
		by = append(by, rep.short+" (etcd: its 3 members together): "+strings.Join(parts, ", "))
	}
	if len(by) > 0 {
		r.note("jetstream", "CPU per job by process, median µs: %s.", strings.Join(by, "; "))
	}
	r.note("jetstream", "Jobs per load: %d for JetStream R1 and R3 (-js-n), so that each load lasts a second or more; %d for JetStream R1 synced and for meshpool's loads (-durable-n, -none-n %d non-durable).", cfg.jsN, cfg.durableN, cfg.noneN)
	compareJetStream(r, got[0], got[1], got[2], rep)
}

// jsMeasure starts spec's servers on a fresh store, makes the stream, starts
// the workers, and measures throughput and then latency; it stops every
// process it started.
func jsMeasure(ctx context.Context, e *env, cfg config, spec jsSpec) (jsRun, error) {
	var x jsRun
	s, err := startJS(e, spec)
	if err != nil {
		return x, err
	}
	defer s.close()
	nc, err := s.connect(ctx)
	if err != nil {
		return x, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return x, fmt.Errorf("cannot use JetStream: %w", err)
	}
	leader, err := s.makeStream(ctx, js)
	if err != nil {
		return x, err
	}
	if err := s.startWorkers(ctx, e, js, jsWorkers); err != nil {
		return x, err
	}
	url := s.clientURL(leader)
	if x.load, err = jsLoad(ctx, s, url, spec.jobs(cfg), cfg.inflight); err != nil {
		return x, fmt.Errorf("throughput: %w", err)
	}
	if err := drained(ctx, js); err != nil {
		return x, err
	}
	if x.lat, err = jsLatency(ctx, url, cfg.latency); err != nil {
		return x, fmt.Errorf("latency: %w", err)
	}
	return x, nil
}
