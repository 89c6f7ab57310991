// Command bench measures a meshpool cluster of real processes on loopback
// (an etcd process from the PATH and meshpool nodes on 127.0.0.x) and writes
// the figures, with their baselines, to a Markdown file.
//
//	go run ./bench -binary bin/meshpool -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	binary  string
	out     string
	runs    int
	idle    time.Duration
	latency int
}

func run(ctx context.Context, args []string) error {
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.binary, "binary", "bin/meshpool", "the meshpool binary to run")
	fs.StringVar(&cfg.out, "out", "BENCHMARKS.md", "where to write the report")
	fs.IntVar(&cfg.runs, "runs", 3, "runs per figure")
	fs.DurationVar(&cfg.idle, "idle", 10*time.Second, "how long to watch an idle node's CPU")
	fs.IntVar(&cfg.latency, "latency-n", 1000, "sequential round trips per latency run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("cannot parse flags: %w", err)
	}
	if cfg.runs < 1 || cfg.latency < 1 {
		return errors.New("-runs and -latency-n must be at least 1")
	}
	began := time.Now()
	m, err := machineInfo(ctx, cfg.binary)
	if err != nil {
		return err
	}
	e, err := newEnv(cfg.binary)
	if err != nil {
		return err
	}
	defer e.close()
	if err := e.startEtcd(ctx); err != nil {
		return err
	}
	r := &report{machine: m, runs: cfg.runs}
	measure(ctx, e, cfg, r)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	r.took = time.Since(began)
	if err := os.WriteFile(cfg.out, []byte(r.markdown()), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", cfg.out, err)
	}
	progress("wrote %s in %s", cfg.out, r.took.Round(time.Second))
	return nil
}

// measure runs every figure; one that fails is listed as not measured.
func measure(ctx context.Context, e *env, cfg config, r *report) {
	progress("idle 3-node cluster: RSS, CPU, node start, throughput, latency")
	if err := sharedCluster(ctx, e, cfg, r); err != nil {
		r.fail("figures 1, 2 and 5", err)
	}
	for _, f := range []struct {
		name string
		sig  syscall.Signal
		row  row
	}{
		{"clean master exit", syscall.SIGTERM, row{name: "3. Clean master exit (SIGTERM) → new master dispatching", unit: "s", format: "%.2f"}},
		{"master kill -9", syscall.SIGKILL, row{name: "4. Master kill -9 → new master dispatching", unit: "s", format: "%.2f", note: "TTL 3 s"}},
	} {
		row := f.row
		for i := range cfg.runs {
			progress("%s: run %d/%d", f.name, i+1, cfg.runs)
			s, err := failover(ctx, e, f.sig)
			if err != nil {
				r.fail(row.name, err)
				row.runs = nil
				break
			}
			progress("  %.2f s", s)
			row.runs = append(row.runs, s)
		}
		r.add(row)
	}
	join := row{name: "6. Join: 3rd node start → routed with every peer, seen by the master", unit: "s", format: "%.3f"}
	leave := row{name: "7. Clean leave (SIGTERM a worker) → gone from every peer", unit: "s", format: "%.3f"}
	for i := range cfg.runs {
		progress("join and leave: run %d/%d", i+1, cfg.runs)
		j, l, err := joinLeave(ctx, e)
		if err != nil {
			r.fail("figures 6 and 7", err)
			join.runs, leave.runs = nil, nil
			break
		}
		progress("  join %.3f s, leave %.3f s", j, l)
		join.runs = append(join.runs, j)
		leave.runs = append(leave.runs, l)
	}
	r.add(join)
	r.add(leave)
}

// sharedCluster runs the figures that leave no state behind on one cluster.
func sharedCluster(ctx context.Context, e *env, cfg config, r *report) error {
	cl, err := e.newCluster(ctx, 3)
	if err != nil {
		return err
	}
	defer cl.close()
	_, worker, _, err := cl.master(ctx)
	if err != nil {
		return err
	}
	other := cl.nodes[0]
	if other == worker {
		other = cl.nodes[1]
	}

	rss := row{name: "5b. Idle node RSS (highest of 3 nodes)", unit: "MiB", format: "%.1f"}
	cpu := row{name: fmt.Sprintf("5c. Idle node CPU over %s (highest of 3 nodes)", cfg.idle), unit: "% of one core", format: "%.2f"}
	for i := range cfg.runs {
		progress("idle usage: run %d/%d (%s)", i+1, cfg.runs, cfg.idle)
		m, c, err := idleUsage(ctx, cl, cfg.idle)
		if err != nil {
			return err
		}
		progress("  %.1f MiB, %.2f%%", m, c)
		rss.runs, cpu.runs = append(rss.runs, m), append(cpu.runs, c)
	}
	r.add(rss)
	r.add(cpu)

	ready := row{name: "5a. Node start → /readyz 200 (4th node)", unit: "s", format: "%.3f"}
	for i := range cfg.runs {
		progress("node start → ready: run %d/%d", i+1, cfg.runs)
		s, err := startReady(ctx, cl)
		if err != nil {
			return err
		}
		progress("  %.3f s", s)
		ready.runs = append(ready.runs, s)
	}
	r.add(ready)

	tput := row{name: "1. Durable throughput (5000 tasks, 128 in flight, 3 nodes)", unit: "tasks/s", format: "%.0f",
		base: "serial etcd puts/s", note: "goal ≥ 20000 tasks/s and ≥ 10×"}
	for i := range cfg.runs {
		progress("throughput: run %d/%d (etcd puts 2 s, then 5000 tasks)", i+1, cfg.runs)
		puts, err := serialPuts(ctx, e.cli, 2*time.Second)
		if err != nil {
			return err
		}
		t, err := throughput(ctx, worker)
		if err != nil {
			return err
		}
		progress("  %.0f tasks/s, %.0f puts/s", t, puts)
		tput.runs, tput.baseRuns, tput.ratioRuns = append(tput.runs, t), append(tput.baseRuns, puts), append(tput.ratioRuns, t/puts)
	}
	r.add(tput)

	p50 := row{name: fmt.Sprintf("2. Submit → result p50, one in flight (%d sequential)", cfg.latency), unit: "ms", format: "%.2f",
		base: "NATS request-reply across one route, p50", note: "ratio = p50 ÷ baseline p50"}
	p99 := row{name: fmt.Sprintf("2. Submit → result p99, one in flight (%d sequential)", cfg.latency), unit: "ms", format: "%.2f",
		base: "NATS request-reply across one route, p99"}
	for i := range cfg.runs {
		progress("latency: run %d/%d (NATS baseline, then submit+wait)", i+1, cfg.runs)
		b, err := natsRoundTrip(ctx, other, worker, cfg.latency)
		if err != nil {
			return err
		}
		l, err := submitLatency(ctx, worker, cfg.latency)
		if err != nil {
			return err
		}
		progress("  p50 %.2f ms p99 %.2f ms; NATS p50 %.3f ms p99 %.3f ms", l.p50, l.p99, b.p50, b.p99)
		p50.runs, p50.baseRuns, p50.ratioRuns = append(p50.runs, l.p50), append(p50.baseRuns, b.p50), append(p50.ratioRuns, l.p50/b.p50)
		p99.runs, p99.baseRuns = append(p99.runs, l.p99), append(p99.baseRuns, b.p99)
	}
	r.add(p50)
	r.add(p99)
	return nil
}

// progress prints one line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
