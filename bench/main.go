// Command bench measures a meshpool cluster of real processes on loopback
// (an etcd process from the PATH and meshpool nodes on 127.0.X.Y) and
// writes the figures, with their baselines, to a Markdown file. Its
// JetStream baselines run this binary again as servers and workers (see
// jsprocess.go).
//
//	go run ./bench -binary bin/meshpool -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/meshpool/meshpool/message"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
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
	binary          string
	out             string
	runs            int
	idle            time.Duration
	latency         int
	durableN        int
	jsN             int // jobs per JetStream load, but for the synced one (durableN)
	execN           int // durable tasks per throughput run of the --exec kind
	execLatency     int // sequential tasks per latency run of the --exec kind
	noneN           int
	inflight        int
	batch           int           // tasks per batch in the batched durable load
	batchInflight   int           // batches in flight then
	window          time.Duration // etcd capacity and raw NATS throughput runs
	joinRuns        int
	scaleSizes      []int
	scale           scaleConfig
	only            []string // groups to measure; all when empty
	scaleString     string
	onlyString      string
	beforeFile      string
	before          *earlier      // the earlier report's figures; nil: none
	growthN         int           // durable tasks done between the growth group's two loads
	profiles        string        // where the growth group writes CPU profiles; "": none
	expiryN         int           // done records whose expiry the expiry group measures
	expiryRetention time.Duration // the expiry group's --result-retention
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case jsServerCmd:
			return jsServer(ctx, args[1:])
		case jsWorkerCmd:
			return jsWorker(ctx, args[1:])
		}
	}
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.binary, "binary", "bin/meshpool", "the meshpool binary to run")
	fs.StringVar(&cfg.out, "out", "BENCHMARKS.md", "where to write the report")
	fs.IntVar(&cfg.runs, "runs", 3, "runs per figure")
	fs.DurationVar(&cfg.idle, "idle", 10*time.Second, "how long to watch an idle node's CPU")
	fs.IntVar(&cfg.latency, "latency-n", 1000, "sequential round trips per latency run")
	fs.IntVar(&cfg.durableN, "durable-n", 30000, "tasks per durable throughput run")
	fs.IntVar(&cfg.jsN, "js-n", 100000, "jobs per load of JetStream R1 and R3 (jetstream group), enough for a second or more; R1 with every write synced does -durable-n")
	fs.IntVar(&cfg.noneN, "none-n", 60000, "tasks per non-durable throughput run")
	fs.IntVar(&cfg.execN, "exec-n", 5000, "tasks per durable throughput run of the --exec kind (handlers group)")
	fs.IntVar(&cfg.execLatency, "exec-latency-n", 1000, "sequential round trips per latency run of the --exec kind (handlers group)")
	fs.StringVar(&cfg.beforeFile, "before", "", "an earlier report whose durable figures the Go handler is compared with (handlers group); "+
		"default the -out file as it is before this run, \"none\" for no comparison")
	fs.IntVar(&cfg.inflight, "inflight", 256, "submissions in flight in the throughput runs and their baselines")
	fs.IntVar(&cfg.batch, "batch", 100, "tasks per batch in the batched durable load (client.SubmitMany)")
	fs.IntVar(&cfg.batchInflight, "batch-inflight", 8, "batches in flight in the batched durable load")
	fs.DurationVar(&cfg.window, "window", 2*time.Second, "length of each etcd capacity and raw NATS throughput run")
	fs.IntVar(&cfg.joinRuns, "join-runs", 20, "joins and leaves of a 3rd node")
	fs.StringVar(&cfg.scaleString, "scale", "3,10,30,50", "cluster sizes of the scale rows")
	fs.IntVar(&cfg.scale.starts, "scale-starts", 3, "cluster starts per size")
	fs.IntVar(&cfg.scale.joins, "scale-joins", 5, "joins of one more node per size")
	fs.DurationVar(&cfg.scale.window, "scale-window", 4*time.Second, "each of the 3 idle etcd windows per size")
	fs.IntVar(&cfg.scale.rate, "scale-rate", 100, "durable tasks/s while etcd's loaded rate is measured")
	fs.IntVar(&cfg.growthN, "growth-n", 300000, "durable tasks done between the fresh and the later load (growth group)")
	fs.StringVar(&cfg.profiles, "growth-profiles", "", "a directory for CPU profiles of the master and etcd during the growth group's loads; none when empty")
	fs.IntVar(&cfg.expiryN, "expiry-n", 100000, "done records whose expiry is measured (expiry group)")
	fs.DurationVar(&cfg.expiryRetention, "expiry-retention", 45*time.Second, "the nodes' --result-retention in the expiry group: longer than the fill of -expiry-n tasks")
	fs.StringVar(&cfg.onlyString, "only", "", "comma-separated groups to measure (shared,handlers,failover,join,disk,jetstream,growth,expiry,scale); all when empty")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("cannot parse flags: %w", err)
	}
	if cfg.runs < 1 || cfg.latency < 1 || cfg.durableN < 1 || cfg.jsN < 1 || cfg.noneN < 1 || cfg.execN < 1 || cfg.execLatency < 1 || cfg.inflight < 1 || cfg.batch < 2 || cfg.batch > message.MaxBatch || cfg.batchInflight < 1 || cfg.joinRuns < 1 || cfg.growthN < 1 || cfg.expiryN < 1 ||
		cfg.scale.starts < 1 || cfg.scale.joins < 1 || cfg.scale.rate < 1 {
		return errors.New("every count must be at least 1")
	}
	for s := range strings.SplitSeq(cfg.scaleString, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("-scale: %q is not a cluster size of at least 2", s)
		}
		cfg.scaleSizes = append(cfg.scaleSizes, n)
	}
	if cfg.onlyString != "" {
		cfg.only = strings.Split(cfg.onlyString, ",")
	}
	if len(cfg.only) == 0 || slices.Contains(cfg.only, "handlers") {
		if err := cfg.readBefore(); err != nil {
			return err
		}
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
	progress("etcd on %s", e.etcdEndpoint)
	r := &report{machine: m, cfg: cfg}
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

// measure runs every group; a figure that fails is listed as not measured.
func measure(ctx context.Context, e *env, cfg config, r *report) {
	want := func(g string) bool { return len(cfg.only) == 0 || slices.Contains(cfg.only, g) }
	if want("shared") {
		progress("shared 3-node cluster: idle usage, node start, throughput, latency")
		if err := sharedCluster(ctx, e, cfg, r); err != nil {
			r.fail("the shared cluster's figures", err)
		}
	}
	if want("handlers") && ctx.Err() == nil {
		progress("handlers: a 3-node cluster running the Go demo kind and --exec %s=%s", nopKind, nopCommand)
		if err := handlerFigures(ctx, e, cfg, r); err != nil {
			r.fail("the handlers' figures", err)
		}
	}
	if want("failover") && ctx.Err() == nil {
		failovers(ctx, e, cfg, r)
	}
	if want("join") && ctx.Err() == nil {
		progress("join and leave: %d runs on one 2-node cluster", cfg.joinRuns)
		joins(ctx, e, cfg, r)
	}
	if want("disk") && ctx.Err() == nil {
		progress("disk: a fresh etcd with its data in %s", diskDir)
		if err := diskFigures(ctx, e, cfg, r); err != nil {
			r.fail("durable throughput with etcd's data on disk", err)
		}
	}
	if want("jetstream") && ctx.Err() == nil {
		progress("jetstream: work-queue baselines, %d jobs (%d with every write synced), %d in flight, %d worker processes", cfg.jsN, cfg.durableN, cfg.inflight, jsWorkers)
		jetstreamFigures(ctx, e, cfg, r)
	}
	if want("growth") && ctx.Err() == nil {
		progress("growth: durable throughput on a fresh etcd and after %d more done tasks", cfg.growthN)
		if err := growthFigures(ctx, e, cfg, r); err != nil {
			r.fail("durable throughput as done records accumulate", err)
		}
	}
	if want("expiry") && ctx.Err() == nil {
		progress("expiry: the expiry of %d done records, and of as many keys under one lease, under load", cfg.expiryN)
		if err := expiryFigures(ctx, e, cfg, r); err != nil {
			r.fail("the expiry of done records", err)
		}
	}
	if want("scale") && ctx.Err() == nil {
		progress("scale: a fresh etcd")
		if err := e.restartEtcd(ctx); err != nil {
			r.fail("scale", err)
			return
		}
		for _, n := range cfg.scaleSizes {
			if ctx.Err() != nil {
				return
			}
			progress("scale: %d nodes", n)
			f, err := scale(ctx, e, n, cfg.scale)
			if err != nil {
				r.fail(fmt.Sprintf("scale, %d nodes", n), err)
				continue
			}
			scaleRows(r, n, f, cfg.scale)
		}
	}
}

// readBefore reads the earlier report of -before: when the flag is not
// given, the -out file if it has the figures (a report of this bench), and
// no comparison if not.
func (cfg *config) readBefore() error {
	path := cfg.beforeFile
	if path == "" {
		path = cfg.out
	}
	if path == "none" {
		return nil
	}
	b, err := readEarlier(path)
	switch {
	case err == nil:
		cfg.before = &b
		progress("earlier report: %s (%s, %s): durable %.0f tasks/s, %.1f µs/task, p50 %.2f ms", path, b.meshpool, b.measured, b.durable, b.cpu, b.p50)
	case cfg.beforeFile != "":
		return fmt.Errorf("-before: %w", err)
	default:
		first, _, _ := strings.Cut(err.Error(), "\n")
		progress("no earlier report to compare the Go handler with: %s", first)
	}
	return nil
}

// progress prints one line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
