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
// measured in the same runs and the per-run ratio. In a pivot group (CPU
// per task, scale) a row is one cell: name is the line, col the column.
type row struct {
	group              string // a group's id, see groups
	key                string // the figure it belongs to, see figures
	col                string // pivot groups only
	name, unit, format string
	runs               []float64
	base, baseFormat   string
	baseRuns           []float64
	ratioRuns          []float64
	goal               string
	met                func(med, hi, ratio float64) bool // nil: no verdict
	note               string
}

// verdict is "met", "missed" or "" for a row without a goal.
func (x row) verdict() string {
	if x.met == nil || len(x.runs) == 0 {
		return ""
	}
	med, _, hi := spread(x.runs)
	ratio := 0.0
	if len(x.ratioRuns) > 0 {
		ratio = median(x.ratioRuns)
	}
	if x.met(med, hi, ratio) {
		return "met"
	}
	return "**missed**"
}

// groups are the report's tables, in order.
var groups = []struct {
	id, title string
	pivot     bool
}{
	{"throughput", "Throughput", false},
	{"cpu", "CPU during the throughput runs", true},
	{"disk", "Throughput with etcd's data on disk", false},
	{"latency", "Latency, one task in flight", false},
	{"jetstream", "meshpool beside JetStream work queues, same job shape", true},
	{"jetstream-vs", "meshpool ÷ JetStream, same bench run", false},
	{"growth", "Durable throughput as done records accumulate in etcd", true},
	{"expiry", "The expiry of done records: latency of other requests before and during", true},
	{"handlers", "Task kinds: a Go handler and a process per task", false},
	{"failover", "Fail-over", false},
	{"node", "One node", false},
	{"join", "Join and leave, 3 nodes", false},
	{"scale", "Scale", true},
}

// figures are the rows of issue 5's table, issue 12's (task kinds) and
// issue 15's JetStream baselines, to list what is missing.
var figures = []struct{ key, name string }{
	{"durable", "durable throughput"},
	{"etcd-bound", "etcd write capacity (the bound of durable throughput)"},
	{"cpu", "CPU per task by process"},
	{"none", "non-durable dispatch throughput"},
	{"lat-durable", "durable latency p50/p99"},
	{"lat-none", "non-durable latency p50/p99"},
	{"jetstream", "JetStream work-queue baselines: R1 and R3 in /dev/shm, R1 with every write synced on disk (issue 15)"},
	{"vs-jetstream", "meshpool ÷ JetStream, from the same bench run (issue 15; needs the groups shared or disk, and jetstream)"},
	{"growth", "durable throughput and CPU per task on a fresh etcd and after many done records (issue 15)"},
	{"expiry", "the expiry of many done records: the latency of other requests before and during it (issue 15)"},
	{"kind-go", "a Go handler that does nothing: durable throughput, CPU per task, latency"},
	{"kind-exec", "a process per task (--exec): durable throughput, CPU per task, latency, and the process's cost"},
	{"kind-before", "the Go handler compared with an earlier report's figures (-before)"},
	{"clean-exit", "clean master exit → new master dispatching"},
	{"kill", "kill -9 of the master → new master dispatching"},
	{"start", "node start → ready"},
	{"idle", "idle node RSS and CPU"},
	{"join", "join, 3 nodes"},
	{"leave", "clean leave"},
	{"scale-3", "scale, 3 nodes"},
	{"scale-10", "scale, 10 nodes"},
	{"scale-30", "scale, 30 nodes"},
	{"scale-50", "scale, 50 nodes"},
}

type report struct {
	machine machine
	cfg     config
	rows    []row
	notes   map[string][]string // by group, printed under its table
	failed  []string
	took    time.Duration
}

func (r *report) add(x row) {
	if len(x.runs) > 0 {
		r.rows = append(r.rows, x)
	}
}

// find returns the row of group whose name (for a column row, name NUL
// column) starts with prefix, or nil.
func (r *report) find(group, prefix string) *row {
	for i := range r.rows {
		x := &r.rows[i]
		name := x.name
		if x.col != "" {
			name += "\x00" + x.col
		}
		if x.group == group && strings.HasPrefix(name, prefix) {
			return x
		}
	}
	return nil
}

func (r *report) note(group, format string, args ...any) {
	if r.notes == nil {
		r.notes = map[string][]string{}
	}
	r.notes[group] = append(r.notes[group], fmt.Sprintf(format, args...))
}

func (r *report) fail(what string, err error) {
	progress("%s: not measured: %v", what, err)
	first, _, _ := strings.Cut(err.Error(), "\n")
	r.failed = append(r.failed, fmt.Sprintf("%s: %s", what, first))
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "# Benchmarks\n\nMeasured by `make bench` (`go run ./bench`) on %s; the whole run took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n| | |\n|---|---|\n| CPUs (nproc) | %d |\n| memory (MemTotal) | %s |\n| Go | %s |\n| etcd | %s |\n| meshpool | %s |\n\n",
		m.cpus, m.memory, m.goVersion, m.etcd, m.meshpool)
	b.WriteString("Everything runs on this one machine over loopback: one etcd process (data dir in /dev/shm) and meshpool " +
		"node processes on their own 127.0.X.Y addresses (default ports 4222/6222/8222) with " +
		"`--task-interval 0 --work-time 0s --ttl 3s --log-level warn --slots 256` (and `--exec nop=/bin/true` in the task kinds' cluster); " +
		"the load generator shares the same cores. The JetStream baselines run nats-server and worker processes (this bench binary run again) " +
		"on 127.0.255.x, with their stores in /dev/shm or, with every write synced, on disk. " +
		"The machine is shared with other work, so absolute figures are noisy; a ratio to a baseline measured in the " +
		"same run is the figure to compare.\n\n")
	fmt.Fprintf(&b, "## Figures\n\nEach figure is the median of its runs (%d unless the figure says otherwise), with the min and max. "+
		"A baseline is measured in the same runs; the ratio is the median of the per-run ratios.\n\n", r.cfg.runs)
	for _, g := range groups {
		var rows []row
		for _, x := range r.rows {
			if x.group == g.id {
				rows = append(rows, x)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n", g.title)
		if g.pivot {
			pivot(&b, rows)
		} else {
			table(&b, rows)
		}
		for _, n := range r.notes[g.id] {
			fmt.Fprintf(&b, "\n%s\n", n)
		}
		b.WriteString("\n")
	}
	var missing []string
	for _, f := range figures {
		if !slices.ContainsFunc(r.rows, func(x row) bool { return x.key == f.key }) {
			missing = append(missing, f.name)
		}
	}
	b.WriteString("## Not measured in this run\n\n")
	if len(missing) == 0 && len(r.failed) == 0 {
		b.WriteString("Nothing: every figure of issues 5 and 12, and issue 15's JetStream baselines, is in the tables.\n")
	}
	for _, s := range missing {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	for _, s := range r.failed {
		fmt.Fprintf(&b, "- failed in this run: %s\n", s)
	}
	b.WriteString("\n## How each figure is measured\n\n" + methods(r.cfg))
	return b.String()
}

// table writes rows with a median, min, max, baseline and ratio each.
func table(b *strings.Builder, rows []row) {
	b.WriteString("| figure | unit | median | min | max | baseline, same runs | baseline median | ratio | goal | |\n" +
		"|---|---|---:|---:|---:|---|---:|---:|---|---|\n")
	for _, x := range rows {
		med, lo, hi := spread(x.runs)
		f := func(v float64) string { return fmt.Sprintf(x.format, v) }
		base, baseMed, ratio := "—", "", ""
		if len(x.baseRuns) > 0 {
			bf := x.baseFormat
			if bf == "" {
				bf = x.format
			}
			base, baseMed = x.base, fmt.Sprintf(bf, median(x.baseRuns))
		}
		if len(x.ratioRuns) > 0 {
			ratio = fmt.Sprintf("%.2f×", median(x.ratioRuns))
		}
		name := x.name
		if x.note != "" {
			name += " — " + x.note
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			name, x.unit, f(med), f(lo), f(hi), base, baseMed, ratio, x.goal, x.verdict())
	}
}

// pivot writes one line per row name and one column per col, each cell
// "median (min–max)". Rows without a unit (their columns name it) have no
// unit column.
func pivot(b *strings.Builder, rows []row) {
	var names, cols []string
	for _, x := range rows {
		if !slices.Contains(names, x.name) {
			names = append(names, x.name)
		}
		if !slices.Contains(cols, x.col) {
			cols = append(cols, x.col)
		}
	}
	goals := slices.ContainsFunc(rows, func(x row) bool { return x.goal != "" })
	units := slices.ContainsFunc(rows, func(x row) bool { return x.unit != "" })
	b.WriteString("| | ")
	if units {
		b.WriteString("unit | ")
	}
	b.WriteString(strings.Join(cols, " | "))
	if goals {
		b.WriteString(" | goal | ")
	}
	b.WriteString(" |\n|---|")
	if units {
		b.WriteString("---|")
	}
	b.WriteString(strings.Repeat("---:|", len(cols)))
	if goals {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, name := range names {
		var unit, goal, note string
		var verdicts []string
		cells := make([]string, len(cols))
		for i, c := range cols {
			j := slices.IndexFunc(rows, func(x row) bool { return x.name == name && x.col == c })
			if j < 0 {
				continue
			}
			x := rows[j]
			unit, note = x.unit, x.note
			if x.goal != "" {
				goal = x.goal
			}
			if v := x.verdict(); v != "" {
				verdicts = append(verdicts, v+" at "+c)
			}
			med, lo, hi := spread(x.runs)
			if lo == hi {
				cells[i] = fmt.Sprintf(x.format, med)
			} else {
				cells[i] = fmt.Sprintf(x.format+" ("+x.format+"–"+x.format+")", med, lo, hi)
			}
		}
		if note != "" {
			name += " — " + note
		}
		if units {
			name += " | " + unit
		}
		fmt.Fprintf(b, "| %s | %s", name, strings.Join(cells, " | "))
		if goals {
			fmt.Fprintf(b, " | %s | %s", goal, strings.Join(verdicts, ", "))
		}
		b.WriteString(" |\n")
	}
	b.WriteString("\nEach cell: median (min–max).\n")
}
