package main

import (
	"context"
	"fmt"
	"os"
)

// diskDir is where the disk group keeps etcd's data: a real file system,
// so that every commit waits for an fsync, as in production. The other
// groups keep it in /dev/shm, where an fsync costs nothing.
const diskDir = "/var/tmp"

// diskFigures measures durable throughput against an etcd whose data is on
// disk, with that etcd's serial put rate as the baseline: the rate a master
// would reach if it wrote each task's record with its own request.
func diskFigures(ctx context.Context, e *env, cfg config, r *report) error {
	dir, err := os.MkdirTemp(diskDir, "meshpool-bench-etcd-")
	if err != nil {
		return fmt.Errorf("cannot make a data dir on disk: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := e.restartEtcdIn(ctx, dir); err != nil {
		return err
	}
	cl, err := e.newCluster(ctx, 3)
	if err != nil {
		return err
	}
	defer cl.close()
	ro, err := cl.roles(ctx)
	if err != nil {
		return err
	}
	row := row{group: "disk", key: "durable-disk",
		name: fmt.Sprintf("Durable throughput, etcd data on disk (%s, ext4) (%d tasks, %d in flight, 3 nodes)", diskDir, cfg.durableN, cfg.inflight),
		unit: "tasks/s", format: "%.0f", base: "serial etcd puts/s on that etcd (one client)",
		goal: "≥ 10× serial puts", met: func(_, _, ratio float64) bool { return ratio >= 10 }}
	for i := range cfg.runs {
		progress("disk: run %d/%d (serial puts %s; %d durable tasks)", i+1, cfg.runs, cfg.window, cfg.durableN)
		serial, err := serialPuts(ctx, e.cli, cfg.window)
		if err != nil {
			return err
		}
		d, err := durableLoad(ctx, ro, cfg, cfg.durableN, "")
		if err != nil {
			return err
		}
		progress("  %.0f tasks/s, serial puts %.0f/s", d.rate, serial)
		row.runs, row.baseRuns, row.ratioRuns = append(row.runs, d.rate), append(row.baseRuns, serial), append(row.ratioRuns, d.rate/serial)
	}
	r.add(row)
	return nil
}
