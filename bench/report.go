package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	cpus                      int
	memory                    string
	goVersion, etcd, meshpool string
}

func machineInfo(ctx context.Context, binary string) (machine, error) {
	m := machine{cpus: runtime.NumCPU()}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return m, fmt.Errorf("cannot read /proc/meminfo: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			m.memory = strings.TrimSpace(v)
		}
	}
	for _, c := range []struct {
		dst  *string
		name string
		args []string
	}{
		{&m.goVersion, "go", []string{"version"}},
		{&m.etcd, "etcd", []string{"--version"}},
		{&m.meshpool, binary, []string{"version"}},
	} {
		out, err := exec.CommandContext(ctx, c.name, c.args...).Output()
		if err != nil {
			return m, fmt.Errorf("cannot run %s %s: %w", c.name, strings.Join(c.args, " "), err)
		}
		*c.dst, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	return m, nil
}

// row is one figure: its runs and, where there is one, the baseline
// measured in the same runs and the per-run ratio.
type row struct {
	name, unit, format string
	runs               []float64
	base               string
	baseRuns           []float64
	ratioRuns          []float64
	note               string
}

type report struct {
	machine machine
	runs    int
	rows    []row
	failed  []string
	took    time.Duration
}

func (r *report) add(x row) {
	if len(x.runs) > 0 {
		r.rows = append(r.rows, x)
	}
}

func (r *report) fail(what string, err error) {
	progress("%s: not measured: %v", what, err)
	first, _, _ := strings.Cut(err.Error(), "\n")
	r.failed = append(r.failed, fmt.Sprintf("%s: %s", what, first))
}

// spread is the median, min and max of xs.
func spread(xs []float64) (med, lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

var allFigures = []struct{ prefix, name string }{
	{"1.", "1. Durable throughput"},
	{"2.", "2. Submit → result latency"},
	{"3.", "3. Clean master exit → new master dispatching"},
	{"4.", "4. Master kill -9 → new master dispatching"},
	{"5a.", "5a. Node start → ready"},
	{"5b.", "5b. Idle node RSS"},
	{"5c.", "5c. Idle node CPU"},
	{"6.", "6. Join"},
	{"7.", "7. Clean leave"},
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "# Benchmarks\n\nMeasured by `make bench` (`go run ./bench`) on %s; the whole run took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n| | |\n|---|---|\n| CPUs (nproc) | %d |\n| memory (MemTotal) | %s |\n| Go | %s |\n| etcd | %s |\n| meshpool | %s |\n\n",
		m.cpus, m.memory, m.goVersion, m.etcd, m.meshpool)
	b.WriteString("Everything runs on this one machine over loopback: one etcd process (data dir in /dev/shm) and meshpool " +
		"node processes on 127.0.0.x with `--task-interval 0 --work-time 0s --ttl 3s --log-level warn`; the load generator " +
		"shares the same cores.\n\n")
	fmt.Fprintf(&b, "## Figures\n\nEach figure is the median of %d runs, with the min and max. A baseline is measured in the same runs; "+
		"the ratio is the median of the per-run ratios.\n\n", r.runs)
	b.WriteString("| figure | unit | median | min | max | baseline | baseline median | ratio | note |\n|---|---|---:|---:|---:|---|---:|---:|---|\n")
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.name, b.name) })
	for _, x := range rows {
		med, lo, hi := spread(x.runs)
		f := func(v float64) string { return fmt.Sprintf(x.format, v) }
		base, baseMed, ratio := "—", "", ""
		if len(x.baseRuns) > 0 {
			bm, _, _ := spread(x.baseRuns)
			base, baseMed = x.base, f(bm)
		}
		if len(x.ratioRuns) > 0 {
			rm, _, _ := spread(x.ratioRuns)
			ratio = fmt.Sprintf("%.2f×", rm)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.name, x.unit, f(med), f(lo), f(hi), base, baseMed, ratio, x.note)
	}
	var missing []string
	for _, fig := range allFigures {
		if !slices.ContainsFunc(rows, func(x row) bool { return strings.HasPrefix(x.name, fig.prefix) }) {
			missing = append(missing, fig.name)
		}
	}
	b.WriteString("\n## Not measured yet\n\n")
	if len(missing) == 0 && len(r.failed) == 0 {
		b.WriteString("Nothing: every figure of issue 5 is in the table.\n")
	}
	for _, s := range missing {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	for _, s := range r.failed {
		fmt.Fprintf(&b, "- failed in this run: %s\n", s)
	}
	b.WriteString("\n## How each figure is measured\n\n" + methods)
	return b.String()
}

const methods = `1. A client dials a worker's client port and runs ` + "`client.Load(ctx, 5000, 128, true)`" + `; tasks/s = results ÷ time from the first submission to the last result. Baseline: one clientv3 client doing sequential puts of 200-byte values on the same etcd for 2 s, just before the load.
2. 1000 sequential ` + "`Submit`" + ` + ` + "`Wait`" + ` on fresh uuids through a worker (after ` + "`Follow`" + ` and 20 warm-up tasks). Baseline: a responder subscribed through another node's client port, 1000 sequential requests through the worker's port, so each crosses one route.
3. and 4. A fresh 3-node cluster per run; the master is found with ` + "`election.CurrentLeader`" + `, then signalled; a client on another node submits every 5 ms (one attempt of at most 50 ms each, so the resolution is about 50 ms) until a submission is accepted with a higher term.
5a. Exec of a 4th node until its ` + "`GET /readyz`" + ` answers 200; it is stopped with SIGTERM after each run.
5b/5c. VmRSS from /proc/<pid>/status, and utime+stime from /proc/<pid>/stat over the idle window as % of one core; the highest of the 3 nodes of an idle cluster.
6. A fresh 2-node cluster per run; exec of a 3rd node until its /status routes name both peers, both peers' routes name it, and the master's members list it.
7. In the same cluster, SIGTERM to a worker until it is gone from the /status members of the other two nodes.
`
