package main

import (
	"context"
	"fmt"
	"os"

	"github.com/meshpool/meshpool/message"
)

// diskDir is where the disk group keeps etcd's data: a real file system,
// so that every commit waits for an fsync, as in production. The other
// groups keep it in /dev/shm, where an fsync costs nothing.
const diskDir = "/var/tmp"

// The names of the disk group's CPU and latency rows, which the JetStream
// comparison finds (see meshpoolSeries). The latency rows must not start
// like the latency group's, which readEarlier reads.
const (
	diskCPUName     = "CPU per durable task of all processes, etcd data on disk"
	diskLatencyName = "With etcd data on disk: durable submit → result"
)

// diskFigures measures durable throughput against an etcd whose data is on
// disk, with that etcd's serial put rate as the baseline: the rate a master
// would reach if it wrote each task's record with its own request. It also
// gives that load's CPU per task and the latency of one durable task in
// flight, which the JetStream comparison sets beside JetStream's with every
// write synced.
func diskFigures(ctx context.Context, e *env, cfg config, r *report) error {
	dir, err := os.MkdirTemp(diskDir, "meshpool-bench-etcd-")
	if err != nil {
		return fmt.Errorf("cannot make a data dir on disk: %w", err)
	}
	if err := e.restartEtcdIn(ctx, dir); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	// Back to etcd in /dev/shm for the groups that follow: restartEtcd
	// stops etcd, then removes its data dir, this one. Removed under a
	// running etcd, it made etcd exit (fatal, "failed to purge snap db
	// file") in the next group.
	defer func() {
		if err := e.restartEtcd(context.WithoutCancel(ctx)); err != nil {
			progress("disk: cannot start etcd in /dev/shm again: %v", err)
		}
	}()
	cl, err := e.newCluster(ctx, 3)
	if err != nil {
		return err
	}
	defer cl.close()
	ro, err := cl.roles(ctx)
	if err != nil {
		return err
	}
	rate := row{group: "disk", key: "durable-disk",
		name: fmt.Sprintf("Durable throughput, etcd data on disk (%s, ext4) (%d tasks, %d in flight, 3 nodes)", diskDir, cfg.durableN, cfg.inflight),
		unit: "tasks/s", format: "%.0f", base: "serial etcd puts/s on that etcd (one client)",
		goal: "≥ 10× serial puts", met: func(_, _, ratio float64) bool { return ratio >= 10 }}
	cpu := row{group: "disk", key: "durable-disk", name: diskCPUName, unit: "µs/task", format: "%.1f"}
	p50 := row{group: "disk", key: "durable-disk", name: fmt.Sprintf("%s p50 (%d sequential)", diskLatencyName, cfg.latency), unit: "ms", format: "%.2f"}
	p99 := row{group: "disk", key: "durable-disk", name: fmt.Sprintf("%s p99 (%d sequential)", diskLatencyName, cfg.latency), unit: "ms", format: "%.2f"}
	for i := range cfg.runs {
		progress("disk: run %d/%d (serial puts %s; %d durable tasks; %d sequential)", i+1, cfg.runs, cfg.window, cfg.durableN, cfg.latency)
		serial, err := serialPuts(ctx, e.cli, cfg.window)
		if err != nil {
			return err
		}
		d, err := durableLoad(ctx, ro, cfg, cfg.durableN, "")
		if err != nil {
			return err
		}
		lat, err := submitLatency(ctx, ro.worker, cfg.latency, message.DurabilityDurable, "")
		if err != nil {
			return err
		}
		var sum float64
		for _, k := range processKinds {
			sum += d.cpu[k]
		}
		progress("  %.0f tasks/s, serial puts %.0f/s; CPU %.0f µs/task; p50 %.2f ms p99 %.2f ms", d.rate, serial, sum, lat.p50, lat.p99)
		rate.runs, rate.baseRuns, rate.ratioRuns = append(rate.runs, d.rate), append(rate.baseRuns, serial), append(rate.ratioRuns, d.rate/serial)
		cpu.runs, p50.runs, p99.runs = append(cpu.runs, sum), append(p50.runs, lat.p50), append(p99.runs, lat.p99)
	}
	for _, x := range []row{rate, cpu, p50, p99} {
		r.add(x)
	}
	return nil
}
