package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/meshpool/meshpool/message"
)

// sharedCluster runs the figures that leave no state behind on one
// 3-node cluster: idle usage, node start, throughput and latency.
func sharedCluster(ctx context.Context, e *env, cfg config, r *report) error {
	cl, err := e.newCluster(ctx, 3)
	if err != nil {
		return err
	}
	defer cl.close()
	ro, err := cl.roles(ctx)
	if err != nil {
		return err
	}
	if err := nodeFigures(ctx, cl, cfg, r); err != nil {
		return err
	}
	if err := throughputFigures(ctx, ro, cfg, r); err != nil {
		return err
	}
	return latencyFigures(ctx, ro, cfg, r)
}

// roles finds the master, the worker the load generator dials, and the
// other worker of a 3-node cluster.
func (c *cluster) roles(ctx context.Context) (roles, error) {
	master, worker, _, err := c.master(ctx)
	if err != nil {
		return roles{}, err
	}
	ro := roles{cl: c, master: master, worker: worker}
	for _, nd := range c.nodes {
		if nd != master && nd != worker {
			ro.other = nd
		}
	}
	return ro, nil
}

func nodeFigures(ctx context.Context, cl *cluster, cfg config, r *report) error {
	rss := row{group: "node", key: "idle", name: "Idle node RSS (highest of 3 nodes)", unit: "MiB", format: "%.1f",
		goal: "≤ 30 MB (28.6 MiB)", met: func(med, _, _ float64) bool { return med <= 30e6/(1<<20) }}
	anon := row{group: "node", key: "idle", name: "  of which anonymous: heap, stacks (RssAnon of that node)", unit: "MiB", format: "%.1f"}
	file := row{group: "node", key: "idle", name: "  of which file-backed: pages of the binary, shared by every process that runs it (RssFile)", unit: "MiB", format: "%.1f"}
	cpu := row{group: "node", key: "idle", name: fmt.Sprintf("Idle node CPU over %s (highest of 3 nodes)", cfg.idle),
		unit: "% of one core", format: "%.2f", goal: "≤ 1%", met: func(med, _, _ float64) bool { return med <= 1 }}
	for i := range cfg.runs {
		progress("idle usage: run %d/%d (%s)", i+1, cfg.runs, cfg.idle)
		u, err := idleUsage(ctx, cl, cfg.idle)
		if err != nil {
			return err
		}
		_, _, m := spread(u.rssMiB)
		_, _, c := spread(u.cpuPct)
		top := u.mem[slices.Index(u.rssMiB, m)]
		progress("  %.1f MiB (anonymous %.1f, file %.1f), %.2f%%", m, top.anon, top.file, c)
		rss.runs, cpu.runs = append(rss.runs, m), append(cpu.runs, c)
		anon.runs, file.runs = append(anon.runs, top.anon), append(file.runs, top.file)
	}
	ready := row{group: "node", key: "start", name: "Node start → /readyz 200 (4th node)", unit: "s", format: "%.3f",
		goal: "≤ 0.5 s", met: func(med, _, _ float64) bool { return med <= 0.5 }}
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
	r.add(rss)
	r.add(anon)
	r.add(file)
	r.add(cpu)
	return nil
}

func throughputFigures(ctx context.Context, ro roles, cfg config, r *report) error {
	e := ro.cl.env
	cores := float64(runtime.NumCPU())
	durable := row{group: "throughput", key: "durable", name: fmt.Sprintf("Durable throughput (%d tasks, %d in flight, 3 nodes)", cfg.durableN, cfg.inflight),
		unit: "tasks/s", format: "%.0f", base: "serial etcd puts/s (one client)",
		goal: "≥ 20000 tasks/s and ≥ 10× serial puts", met: func(med, _, ratio float64) bool { return med >= 20000 && ratio >= 10 }}
	batchedLoad := row{group: "throughput", key: "batched", name: fmt.Sprintf("Durable throughput, batched submission (%d tasks, batches of %d, %d batches in flight, 3 nodes)", cfg.durableN, cfg.batch, cfg.batchInflight),
		unit: "tasks/s", format: "%.0f", base: "durable throughput, one task per submission", note: "client.SubmitMany"}
	single := row{group: "throughput", key: "etcd-bound", name: fmt.Sprintf("Bound: etcd put capacity ÷ 2 (single puts, %d in flight on 4 clients)", cfg.inflight),
		unit: "tasks/s", format: "%.0f", note: "ratio = durable throughput ÷ this"}
	batched := row{group: "throughput", key: "etcd-bound", name: "Bound: etcd batched capacity ÷ 2 (Txns of 64 puts, 16 in flight on 4 clients)",
		unit: "tasks/s", format: "%.0f", note: "ratio = durable throughput ÷ this"}
	perTxn := row{group: "throughput", key: "etcd-bound", name: "etcd writes per Txn during the durable load (2 per task ÷ Txn requests)",
		unit: "writes/Txn", format: "%.1f"}
	durCPU := row{group: "throughput", key: "cpu", name: "Bound: CPU, cores ÷ CPU per durable task of all processes",
		unit: "tasks/s", format: "%.0f", note: "ratio = durable throughput ÷ this"}
	none := row{group: "throughput", key: "none", name: fmt.Sprintf("Non-durable dispatch throughput (%d tasks, %d in flight, 3 nodes)", cfg.noneN, cfg.inflight),
		unit: "tasks/s", format: "%.0f", base: fmt.Sprintf("raw NATS request-reply/s, %d in flight, same route", cfg.inflight),
		goal: "≥ 0.5× raw NATS", met: func(_, _, ratio float64) bool { return ratio >= 0.5 }}
	noneCPU := row{group: "throughput", key: "cpu", name: "Bound: CPU, cores ÷ CPU per non-durable task of all processes",
		unit: "tasks/s", format: "%.0f", note: "ratio = non-durable throughput ÷ this"}
	cpuRows := map[string]*row{}
	cpuRow := func(kind, col string) *row {
		k := kind + "\x00" + col
		if cpuRows[k] == nil {
			cpuRows[k] = &row{group: "cpu", key: "cpu", name: kind, col: col, unit: "µs/task", format: "%.1f"}
		}
		return cpuRows[k]
	}
	for i := range cfg.runs {
		progress("throughput: run %d/%d (etcd serial, concurrent and batched puts %s each; %d durable tasks; raw NATS %s; %d non-durable tasks)",
			i+1, cfg.runs, cfg.window, cfg.durableN, cfg.window, cfg.noneN)
		serial, err := serialPuts(ctx, e.cli, cfg.window)
		if err != nil {
			return err
		}
		capSingle, err := etcdCapacity(ctx, e, 4, cfg.inflight, 1, cfg.window)
		if err != nil {
			return err
		}
		capTxn, err := etcdCapacity(ctx, e, 4, 16, 64, cfg.window)
		if err != nil {
			return err
		}
		d, err := durableLoad(ctx, ro, cfg, cfg.durableN, "")
		if err != nil {
			return err
		}
		if err := compact(ctx, e.cli); err != nil {
			return err
		}
		b, err := load(ctx, ro, cfg.durableN, cfg.batchInflight, cfg.batch, message.DurabilityDurable, "")
		if err != nil {
			return fmt.Errorf("batched durable load: %w", err)
		}
		if err := compact(ctx, e.cli); err != nil {
			return err
		}
		raw, err := natsThroughput(ctx, ro.master, ro.worker, cfg.inflight, cfg.window)
		if err != nil {
			return err
		}
		n, err := load(ctx, ro, cfg.noneN, cfg.inflight, 1, message.DurabilityNone, "")
		if err != nil {
			return fmt.Errorf("non-durable load: %w", err)
		}
		dAll, nAll, bAll := cpuRow("all processes", "durable"), cpuRow("all processes", "non-durable"), cpuRow("all processes", "durable, batched")
		var dSum, nSum, bSum float64
		for _, k := range processKinds {
			c := cpuRow(k, "durable")
			c.runs = append(c.runs, d.cpu[k])
			c = cpuRow(k, "non-durable")
			c.runs = append(c.runs, n.cpu[k])
			c = cpuRow(k, "durable, batched")
			c.runs = append(c.runs, b.cpu[k])
			dSum, nSum, bSum = dSum+d.cpu[k], nSum+n.cpu[k], bSum+b.cpu[k]
		}
		dAll.runs, nAll.runs, bAll.runs = append(dAll.runs, dSum), append(nAll.runs, nSum), append(bAll.runs, bSum)
		for _, x := range []struct {
			col string
			l   loadResult
		}{{"durable", d}, {"non-durable", n}, {"durable, batched", b}} {
			c := cpuRow("these processes together, % of all cores", x.col)
			c.unit, c.runs = "%", append(c.runs, x.l.ours)
			c = cpuRow("the whole machine (anyone's processes), % of all cores", x.col)
			c.unit, c.runs = "%", append(c.runs, x.l.busy)
		}
		dBound, nBound := cores*1e6/dSum, cores*1e6/nSum

		progress("  durable %.0f tasks/s in %.2f s; etcd serial %.0f puts/s, capacity %.0f puts/s single, %.0f keys/s in Txns of 64; %.1f writes per Txn; CPU %.0f µs/task",
			d.rate, d.took.Seconds(), serial, capSingle, capTxn, 2*float64(cfg.durableN)/d.etcdTxn, dSum)
		progress("  durable, batched %.0f tasks/s in %.2f s; CPU %.0f µs/task", b.rate, b.took.Seconds(), bSum)
		progress("  non-durable %.0f tasks/s in %.2f s; raw NATS %.0f req/s; CPU %.0f µs/task", n.rate, n.took.Seconds(), raw, nSum)
		for _, l := range []loadResult{d, n, b} {
			if l.took < time.Second {
				progress("  WARNING: a load took %.2f s, under 1 s: not a steady state; raise -durable-n or -none-n", l.took.Seconds())
				r.note("throughput", "Warning: a load of run %d took %.2f s, under 1 s, so it is not a steady state; raise -durable-n or -none-n.", i+1, l.took.Seconds())
			}
		}
		durable.runs, durable.baseRuns, durable.ratioRuns = append(durable.runs, d.rate), append(durable.baseRuns, serial), append(durable.ratioRuns, d.rate/serial)
		batchedLoad.runs, batchedLoad.baseRuns, batchedLoad.ratioRuns = append(batchedLoad.runs, b.rate), append(batchedLoad.baseRuns, d.rate), append(batchedLoad.ratioRuns, b.rate/d.rate)
		single.runs, single.ratioRuns = append(single.runs, capSingle/2), append(single.ratioRuns, d.rate/(capSingle/2))
		batched.runs, batched.ratioRuns = append(batched.runs, capTxn/2), append(batched.ratioRuns, d.rate/(capTxn/2))
		perTxn.runs = append(perTxn.runs, 2*float64(cfg.durableN)/d.etcdTxn)
		durCPU.runs, durCPU.ratioRuns = append(durCPU.runs, dBound), append(durCPU.ratioRuns, d.rate/dBound)
		none.runs, none.baseRuns, none.ratioRuns = append(none.runs, n.rate), append(none.baseRuns, raw), append(none.ratioRuns, n.rate/raw)
		noneCPU.runs, noneCPU.ratioRuns = append(noneCPU.runs, nBound), append(noneCPU.ratioRuns, n.rate/nBound)
	}
	for _, x := range []row{durable, batchedLoad, single, batched, perTxn, durCPU, none, noneCPU} {
		r.add(x)
	}
	r.note("throughput", "Reading the bounds: the ratio to the CPU bound is the share of the %d cores that meshpool, etcd and the load "+
		"generator used during the loads (median %.0f%% durable, %.0f%% non-durable). The CPU table below also gives how busy the whole "+
		"machine was; the difference is other work on this shared machine (and kernel time charged to no process). Where the two add up "+
		"to all cores, the task rate is what a task costs in CPU, and the CPU table says which process spends it. The etcd rows say how "+
		"far etcd alone would let durable throughput go.",
		runtime.NumCPU(), 100*median(durCPU.ratioRuns), 100*median(noneCPU.ratioRuns))
	for _, col := range []string{"durable", "durable, batched", "non-durable"} {
		for _, k := range append(processKinds, "all processes", "these processes together, % of all cores", "the whole machine (anyone's processes), % of all cores") {
			r.add(*cpuRow(k, col))
		}
	}
	return nil
}

func latencyFigures(ctx context.Context, ro roles, cfg config, r *report) error {
	n := cfg.latency
	mk := func(kind, key, q, goal string, met func(med, hi, ratio float64) bool) row {
		return row{group: "latency", key: key, name: fmt.Sprintf("%s submit → result %s (%d sequential)", kind, q, n), unit: "ms",
			format: "%.2f", baseFormat: "%.3f", base: "NATS request-reply across one route, " + q, goal: goal, met: met}
	}
	dp50 := mk("Durable", "lat-durable", "p50", "p50 ≤ 3 ms", func(med, _, _ float64) bool { return med <= 3 })
	dp99 := mk("Durable", "lat-durable", "p99", "", nil)
	np50 := mk("Non-durable", "lat-none", "p50", "p50 ≤ 2× raw NATS", func(_, _, ratio float64) bool { return ratio <= 2 })
	np99 := mk("Non-durable", "lat-none", "p99", "", nil)
	onMaster := row{group: "latency", key: "lat-hops", name: fmt.Sprintf("Durable submit → result p50, client on the master's node (%d sequential)", n),
		unit: "ms", format: "%.2f", base: "the same from a client on a worker's node (the submission and its answer cross a route)"}
	for i := range cfg.runs {
		progress("latency: run %d/%d (NATS baseline, durable, non-durable; %d each)", i+1, cfg.runs, n)
		b, err := natsRoundTrip(ctx, ro.other, ro.worker, n)
		if err != nil {
			return err
		}
		d, err := submitLatency(ctx, ro.worker, n, message.DurabilityDurable, "")
		if err != nil {
			return err
		}
		nd, err := submitLatency(ctx, ro.worker, n, message.DurabilityNone, "")
		if err != nil {
			return err
		}
		// The same durable round trips from a client on the master's
		// node: the submission and its answer cross no route.
		dm, err := submitLatency(ctx, ro.master, n, message.DurabilityDurable, "")
		if err != nil {
			return err
		}
		progress("  durable p50 %.2f ms p99 %.2f ms (client on the master's node: p50 %.2f ms); non-durable p50 %.2f ms p99 %.2f ms; NATS p50 %.3f ms p99 %.3f ms",
			d.p50, d.p99, dm.p50, nd.p50, nd.p99, b.p50, b.p99)
		onMaster.runs, onMaster.baseRuns, onMaster.ratioRuns = append(onMaster.runs, dm.p50), append(onMaster.baseRuns, d.p50), append(onMaster.ratioRuns, dm.p50/d.p50)
		for _, x := range []struct {
			row     *row
			v, base float64
		}{{&dp50, d.p50, b.p50}, {&dp99, d.p99, b.p99}, {&np50, nd.p50, b.p50}, {&np99, nd.p99, b.p99}} {
			x.row.runs, x.row.baseRuns, x.row.ratioRuns = append(x.row.runs, x.v), append(x.row.baseRuns, x.base), append(x.row.ratioRuns, x.v/x.base)
		}
	}
	for _, x := range []row{dp50, dp99, np50, np99, onMaster} {
		r.add(x)
	}
	return nil
}

func failovers(ctx context.Context, e *env, cfg config, r *report) {
	for _, f := range []struct {
		what string
		sig  syscall.Signal
		row  row
	}{
		{"clean master exit", syscall.SIGTERM, row{group: "failover", key: "clean-exit", name: "Clean master exit (SIGTERM) → new master dispatching",
			unit: "s", format: "%.2f", goal: "≤ 0.1 s", met: func(med, _, _ float64) bool { return med <= 0.1 }}},
		{"master kill -9", syscall.SIGKILL, row{group: "failover", key: "kill", name: "Master kill -9 → new master dispatching",
			unit: "s", format: "%.2f", goal: "≤ TTL + 1 s = 4 s", met: func(med, _, _ float64) bool { return med <= 4 }, note: "TTL 3 s"}},
	} {
		x := f.row
		for i := range cfg.runs {
			progress("%s: run %d/%d", f.what, i+1, cfg.runs)
			s, err := failover(ctx, e, f.sig)
			if err != nil {
				r.fail(x.name, err)
				x.runs = nil
				break
			}
			progress("  %.2f s", s)
			x.runs = append(x.runs, s)
		}
		r.add(x)
	}
}

func joins(ctx context.Context, e *env, cfg config, r *report) {
	j, l, err := joinLeave(ctx, e, cfg.joinRuns)
	if err != nil {
		r.fail("join and leave", err)
		return
	}
	n := len(j)
	r.add(row{group: "join", key: "join", name: fmt.Sprintf("Join: 3rd node start → routed with both peers and seen by the master (%d runs; median = p50, max = p99)", n),
		unit: "s", format: "%.3f", runs: j, goal: "p99 ≤ 0.1 s", met: func(_, hi, _ float64) bool { return hi <= 0.1 }})
	r.add(row{group: "join", key: "leave", name: fmt.Sprintf("Clean leave: SIGTERM of that node → gone from both peers' members (%d runs; median = p50, max = p99)", n),
		unit: "s", format: "%.3f", runs: l, goal: "≤ 0.1 s (p99)", met: func(_, hi, _ float64) bool { return hi <= 0.1 }})
}

// scaleRows adds one column of the scale table.
func scaleRows(r *report, n int, f scaleFigures, sc scaleConfig) {
	col := fmt.Sprintf("%d nodes", n)
	key := fmt.Sprintf("scale-%d", n)
	add := func(name, unit, format string, runs []float64) {
		r.add(row{group: "scale", key: key, col: col, name: name, unit: unit, format: format, runs: runs})
	}
	add(fmt.Sprintf("start of all nodes at once → every node ready (%d starts)", sc.starts), "s", "%.2f", f.ready)
	add(fmt.Sprintf("start of all nodes at once → every node routed to all others (%d starts)", sc.starts), "s", "%.2f", f.meshed)
	add("NATS route connections per node (num_routes of /nats/routez), over nodes", "connections", "%.0f", f.routeConns)
	add("distinct route peers per node, over nodes", "peers", "%.0f", f.routePeer)
	add("etcd requests/s, idle cluster (3 windows)", "req/s", "%.1f", f.idle)
	add("  of which unary calls", "req/s", "%.1f", f.idleUnary)
	add("  of which messages on streams (lease keep-alives, watches)", "req/s", "%.1f", f.idleStream)
	add(fmt.Sprintf("etcd requests/s at %d durable tasks/s (3 windows)", sc.rate), "req/s", "%.1f", f.loaded)
	add("node RSS, idle, over nodes", "MiB", "%.1f", f.rss)
	add("node CPU, idle, over nodes", "% of one core", "%.2f", f.cpu)
	add("etcd RSS", "MiB", "%.0f", f.etcdRSS)
	join := row{group: "scale", key: key, col: col, name: fmt.Sprintf("join of one more node → routed with every peer and seen by the master (%d runs; max = p99)", sc.joins),
		unit: "s", format: "%.3f", runs: f.join}
	if n == 50 {
		join.goal, join.met = "p99 ≤ 2 s at 50 nodes (3 nodes: see Join and leave)", func(_, hi, _ float64) bool { return hi <= 2 }
	}
	r.add(join)
	add(fmt.Sprintf("clean leave of that node → gone from every peer's members (%d runs)", sc.joins), "s", "%.3f", f.leave)
	r.note("scale", "etcd requests by method, %s: idle %s; at %d tasks/s %s.", col, methodString(f.idleMethods), sc.rate, methodString(f.loadedMethods))
}
