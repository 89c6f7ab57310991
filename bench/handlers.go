package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/meshpool/meshpool/message"
)

// The kind the handlers group runs as a process per task: a command that
// does nothing and prints nothing, so each result is null.
const (
	nopKind    = "nop"
	nopCommand = "/bin/true"
)

// kindRun is one kind's figures in one run of the handlers group.
type kindRun struct {
	load loadResult
	cpu  float64 // µs per task, all processes
	lat  latencies
}

// handlerFigures measures, on one 3-node cluster whose nodes run both the
// demo kind (a Go handler that does nothing with --work-time 0s) and
// --exec nop=/bin/true, the durable throughput, the CPU per task and the
// latency of one task in flight of each kind, and what a process per task
// costs: exec minus Go, run by run.
func handlerFigures(ctx context.Context, e *env, cfg config, r *report) error {
	cl, err := e.newCluster(ctx, 3, "--exec", nopKind+"="+nopCommand)
	if err != nil {
		return err
	}
	defer cl.close()
	ro, err := cl.roles(ctx)
	if err != nil {
		return err
	}
	const goName, execName = "Go handler (triple, --work-time 0s)", "Process per task (--exec " + nopKind + "=" + nopCommand + ")"
	mk := func(key, name, unit, format string) row {
		return row{group: "handlers", key: key, name: name, unit: unit, format: format}
	}
	vsGo := func(x row) row {
		x.base = "Go handler, same runs"
		return x
	}
	goRate := mk("kind-go", fmt.Sprintf("%s: durable throughput (%d tasks, %d in flight, 3 nodes)", goName, cfg.durableN, cfg.inflight), "tasks/s", "%.0f")
	goCPU := mk("kind-go", goName+": CPU per durable task, all processes", "µs/task", "%.1f")
	goP50 := mk("kind-go", fmt.Sprintf("%s: durable submit → result p50 (%d sequential)", goName, cfg.latency), "ms", "%.2f")
	goP99 := mk("kind-go", fmt.Sprintf("%s: durable submit → result p99 (%d sequential)", goName, cfg.latency), "ms", "%.2f")
	exRate := vsGo(mk("kind-exec", fmt.Sprintf("%s: durable throughput (%d tasks, %d in flight, 3 nodes)", execName, cfg.execN, cfg.inflight), "tasks/s", "%.0f"))
	exCPU := vsGo(mk("kind-exec", execName+": CPU per durable task, all processes", "µs/task", "%.1f"))
	exP50 := vsGo(mk("kind-exec", fmt.Sprintf("%s: durable submit → result p50 (%d sequential)", execName, cfg.execLatency), "ms", "%.2f"))
	exP99 := vsGo(mk("kind-exec", fmt.Sprintf("%s: durable submit → result p99 (%d sequential)", execName, cfg.execLatency), "ms", "%.2f"))
	procCPU := mk("kind-exec", "The process per task, exec − Go: CPU of all processes", "µs/task", "%.0f")
	procP50 := mk("kind-exec", "The process per task, exec − Go: p50 latency", "ms", "%.2f")
	procP99 := mk("kind-exec", "The process per task, exec − Go: p99 latency", "ms", "%.2f")
	var bRate, bCPU, bP50 row
	if b := cfg.before; b != nil {
		from := fmt.Sprintf("%s, %s", b.meshpool, b.measured)
		bRate = mk("kind-before", fmt.Sprintf("%s durable throughput ÷ the earlier report's (%.0f tasks/s; %s)", goName, b.durable, from), "×", "%.2f")
		bRate.goal, bRate.met = "≥ 0.90", func(med, _, _ float64) bool { return med >= 0.9 }
		bCPU = mk("kind-before", fmt.Sprintf("%s CPU per durable task ÷ the earlier report's (%.1f µs/task)", goName, b.cpu), "×", "%.2f")
		bCPU.goal, bCPU.met = "≤ 1.10", func(med, _, _ float64) bool { return med <= 1.1 }
		bP50 = mk("kind-before", fmt.Sprintf("%s durable p50 ÷ the earlier report's (%.2f ms)", goName, b.p50), "×", "%.2f")
		bP50.goal, bP50.met = "≤ 1.10", func(med, _, _ float64) bool { return med <= 1.1 }
		for _, x := range []*row{&bRate, &bCPU, &bP50} {
			x.note = "another run, not the same runs"
		}
	}
	goByProc, exByProc := map[string][]float64{}, map[string][]float64{}
	for i := range cfg.runs {
		progress("handlers: run %d/%d (Go handler: %d durable tasks, %d sequential; --exec %s=%s: %d durable tasks, %d sequential)",
			i+1, cfg.runs, cfg.durableN, cfg.latency, nopKind, nopCommand, cfg.execN, cfg.execLatency)
		g, err := kindFigures(ctx, ro, cfg, "", cfg.durableN, cfg.latency)
		if err != nil {
			return fmt.Errorf("the Go handler: %w", err)
		}
		x, err := kindFigures(ctx, ro, cfg, nopKind, cfg.execN, cfg.execLatency)
		if err != nil {
			return fmt.Errorf("--exec %s=%s: %w", nopKind, nopCommand, err)
		}
		progress("  Go handler: %.0f tasks/s in %.2f s, %.0f µs/task, p50 %.2f ms p99 %.2f ms", g.load.rate, g.load.took.Seconds(), g.cpu, g.lat.p50, g.lat.p99)
		progress("  exec:       %.0f tasks/s in %.2f s, %.0f µs/task, p50 %.2f ms p99 %.2f ms", x.load.rate, x.load.took.Seconds(), x.cpu, x.lat.p50, x.lat.p99)
		for _, l := range []loadResult{g.load, x.load} {
			if l.took.Seconds() < 1 {
				progress("  WARNING: a load took %.2f s, under 1 s: not a steady state; raise -durable-n or -exec-n", l.took.Seconds())
				r.note("handlers", "Warning: a load of run %d took %.2f s, under 1 s, so it is not a steady state; raise -durable-n or -exec-n.", i+1, l.took.Seconds())
			}
		}
		for _, v := range []struct {
			row         *row
			exec, goval float64
		}{{&exRate, x.load.rate, g.load.rate}, {&exCPU, x.cpu, g.cpu}, {&exP50, x.lat.p50, g.lat.p50}, {&exP99, x.lat.p99, g.lat.p99}} {
			v.row.runs, v.row.baseRuns, v.row.ratioRuns = append(v.row.runs, v.exec), append(v.row.baseRuns, v.goval), append(v.row.ratioRuns, v.exec/v.goval)
		}
		goRate.runs, goCPU.runs = append(goRate.runs, g.load.rate), append(goCPU.runs, g.cpu)
		goP50.runs, goP99.runs = append(goP50.runs, g.lat.p50), append(goP99.runs, g.lat.p99)
		procCPU.runs = append(procCPU.runs, x.cpu-g.cpu)
		procP50.runs, procP99.runs = append(procP50.runs, x.lat.p50-g.lat.p50), append(procP99.runs, x.lat.p99-g.lat.p99)
		for _, k := range processKinds {
			goByProc[k], exByProc[k] = append(goByProc[k], g.load.cpu[k]), append(exByProc[k], x.load.cpu[k])
		}
	}
	what := ""
	if b := cfg.before; b != nil {
		// Like for like: the earlier report's figures are the shared
		// group's (the demo kind on a cluster of its own), so this run's
		// shared figures are compared when it measured them; else this
		// group's Go handler runs, on a cluster that also runs --exec.
		rate, cpu, p50 := goRate.runs, goCPU.runs, goP50.runs
		what = "this group's Go handler runs"
		if sr, sc, sp := r.find("throughput", "Durable throughput ("), r.find("cpu", "all processes\x00durable"), r.find("latency", "Durable submit → result p50"); sr != nil && sc != nil && sp != nil {
			rate, cpu, p50, what = sr.runs, sc.runs, sp.runs, "this run's shared-group figures (the same measurement)"
		}
		for _, v := range []struct {
			row  *row
			runs []float64
			was  float64
		}{{&bRate, rate, b.durable}, {&bCPU, cpu, b.cpu}, {&bP50, p50, b.p50}} {
			for _, x := range v.runs {
				v.row.runs = append(v.row.runs, x/v.was)
			}
			v.row.note = "another run, not the same runs; now: " + what
		}
	}
	for _, x := range []row{goRate, goCPU, goP50, goP99, exRate, exCPU, exP50, exP99, procCPU, procP50, procP99, bRate, bCPU, bP50} {
		r.add(x)
	}
	by := make([]string, len(processKinds))
	for i, k := range processKinds {
		by[i] = fmt.Sprintf("%s %.1f / %.1f", k, median(goByProc[k]), median(exByProc[k]))
	}
	r.note("handlers", "CPU per durable task by process, median µs, Go handler / process per task: %s. "+
		"A node's figure includes the processes it ran and waited for (cutime and cstime), so the /bin/true processes are charged to the nodes that ran them.",
		strings.Join(by, "; "))
	r.note("handlers", "%s", handlerStatement(cfg, goRate, goCPU, goP50, goP99, exRate, exCPU, exP50, exP99, procCPU, procP50, procP99, bRate, bCPU, bP50, what))
	return nil
}

// kindFigures runs a durable load of n tasks of kind (the demo's when ""),
// then m sequential ones. A task that ends in an error (the master's
// error_results) fails it.
func kindFigures(ctx context.Context, ro roles, cfg config, kind string, n, m int) (kindRun, error) {
	e := ro.cl.env
	st0, err := e.status(ctx, ro.master)
	if err != nil {
		return kindRun{}, err
	}
	l, err := durableLoad(ctx, ro, cfg, n, kind)
	if err != nil {
		return kindRun{}, err
	}
	lat, err := submitLatency(ctx, ro.worker, m, message.DurabilityDurable, kind)
	if err != nil {
		return kindRun{}, fmt.Errorf("latency: %w", err)
	}
	st1, err := e.status(ctx, ro.master)
	if err != nil {
		return kindRun{}, err
	}
	if d := st1.Dispatch.ErrorResults - st0.Dispatch.ErrorResults; d > 0 {
		return kindRun{}, fmt.Errorf("%d tasks ended in an error (the master's error_results)", d)
	}
	var sum float64
	for _, k := range processKinds {
		sum += l.cpu[k]
	}
	return kindRun{load: l, cpu: sum, lat: lat}, nil
}

// handlerStatement is the handlers group's paragraph in plain words, from
// the medians.
func handlerStatement(cfg config, goRate, goCPU, goP50, goP99, exRate, exCPU, exP50, exP99, procCPU, procP50, procP99, bRate, bCPU, bP50 row, what string) string {
	m := func(x row) float64 { return median(x.runs) }
	ratio := func(x row) float64 { return median(x.ratioRuns) }
	var b strings.Builder
	fmt.Fprintf(&b, "In plain words: a Go handler that does nothing (the demo kind, triple, with --work-time 0s) ran %.0f durable tasks/s "+
		"(%d tasks, %d in flight), answered one task at a time in %.2f ms at p50 and %.2f ms at p99, and cost %.0f µs of CPU per task "+
		"over all processes. ", m(goRate), cfg.durableN, cfg.inflight, m(goP50), m(goP99), m(goCPU))
	if e := cfg.before; e != nil {
		dRate, dCPU, dP50 := 100*(m(bRate)-1), 100*(m(bCPU)-1), 100*(m(bP50)-1)
		verdict := "within"
		if dRate < -10 || dCPU > 10 || dP50 > 10 {
			verdict = "beyond"
		}
		fmt.Fprintf(&b, "The earlier report (%s, measured %s; %s as it was before this run) had %.0f tasks/s, %.0f µs/task and %.2f ms p50 "+
			"(%.2f ms p99); against it, %s: "+
			"throughput %+.0f %%, CPU per task %+.0f %%, p50 %+.0f %%, %s the issue's 10 %%. That report is another run at another time on a "+
			"shared machine, and its own durable runs spread from %.0f to %.0f tasks/s (%+.0f %% to %+.0f %% of its median), so a difference "+
			"inside such a spread says little; for a same-day A/B, run the old commit's bench just before this one (see How each figure is measured). ",
			e.meshpool, e.measured, e.file, e.durable, e.cpu, e.p50, e.p99, what, dRate, dCPU, dP50, verdict,
			e.durableLo, e.durableHi, 100*(e.durableLo/e.durable-1), 100*(e.durableHi/e.durable-1))
	} else {
		b.WriteString("No earlier report was read (-before), so this run does not compare the Go handler with the figures from before task kinds. ")
	}
	fmt.Fprintf(&b, "A kind run as a process per task (--exec %s=%s, which prints nothing, so each result is null) ran %.0f durable tasks/s "+
		"(%d tasks; %.2f× the Go handler's), answered one at a time in %.2f ms at p50 and %.2f ms at p99, and cost %.0f µs of CPU per task "+
		"(%.1f× the Go handler's). The process itself, exec minus Go, costs %.0f µs of CPU per task over all processes and %.2f ms of "+
		"latency at p50 (%.2f ms at p99).",
		nopKind, nopCommand, m(exRate), cfg.execN, ratio(exRate), m(exP50), m(exP99), m(exCPU), ratio(exCPU), m(procCPU), m(procP50), m(procP99))
	return b.String()
}
