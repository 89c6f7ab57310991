package main

import (
	"fmt"
	"strings"
)

// series is one system's runs of the four figures the JetStream
// comparison sets side by side; a nil slice is a figure not measured.
type series struct {
	name, short         string
	rate, p50, p99, cpu []float64
}

// metric is one of those figures.
type metric struct {
	col, unit, format, what string
	more                    bool // more is better (jobs/s); else less (time, CPU)
	of                      func(series) []float64
}

var jsMetrics = []metric{
	{"jobs/s", "jobs/s", "%.0f", "throughput", true, func(s series) []float64 { return s.rate }},
	{"p50, ms", "ms", "%.2f", "latency p50", false, func(s series) []float64 { return s.p50 }},
	{"p99, ms", "ms", "%.2f", "latency p99", false, func(s series) []float64 { return s.p99 }},
	{"CPU, µs/job, all processes", "µs/job", "%.0f", "CPU per job", false, func(s series) []float64 { return s.cpu }},
}

// meshpoolSeries are meshpool's figures of this bench run that the
// JetStream baselines are set beside: the shared group's durable and
// non-durable rows and the disk group's.
func meshpoolSeries(r *report) (durable, batched, none, disk series) {
	runs := func(group, prefix string) []float64 {
		if x := r.find(group, prefix); x != nil {
			return x.runs
		}
		return nil
	}
	durable = series{name: "meshpool durable: etcd, 1 member, data in /dev/shm", short: "meshpool durable",
		rate: runs("throughput", "Durable throughput ("), cpu: runs("cpu", "all processes\x00durable"),
		p50: runs("latency", "Durable submit → result p50"), p99: runs("latency", "Durable submit → result p99")}
	batched = series{name: "meshpool durable, batched submission (client.SubmitMany): etcd, 1 member, data in /dev/shm", short: "meshpool durable, batched",
		rate: runs("throughput", "Durable throughput, batched submission"), cpu: runs("cpu", "all processes\x00durable, batched")}
	none = series{name: "meshpool --durability none", short: "meshpool non-durable",
		rate: runs("throughput", "Non-durable dispatch throughput"), cpu: runs("cpu", "all processes\x00non-durable"),
		p50: runs("latency", "Non-durable submit → result p50"), p99: runs("latency", "Non-durable submit → result p99")}
	disk = series{name: fmt.Sprintf("meshpool durable: etcd, 1 member, data on disk (%s)", diskDir), short: "meshpool durable with etcd on disk",
		rate: runs("disk", "Durable throughput, etcd data on disk"), cpu: runs("disk", diskCPUName),
		p50: runs("disk", diskLatencyName+" p50"), p99: runs("disk", diskLatencyName+" p99")}
	return durable, batched, none, disk
}

// compareJetStream adds the JetStream table (meshpool's lines and the
// baselines', the figures side by side), the ratios meshpool ÷ JetStream
// and a statement of where meshpool is ahead and where behind.
func compareJetStream(r *report, r1, r3, synced, replicated series) {
	durable, batched, none, disk := meshpoolSeries(r)
	for _, s := range []series{durable, batched, none, r1, r3, replicated, synced, disk} {
		for _, m := range jsMetrics {
			key := "jetstream"
			if strings.HasPrefix(s.short, "meshpool") {
				key = "" // counted in its own group
			}
			r.add(row{group: "jetstream", key: key, name: s.name, col: m.col, format: m.format, runs: m.of(s)})
		}
	}
	pairs := []struct{ mesh, js series }{{durable, r1}, {batched, r1}, {durable, r3}, {replicated, r3}, {none, r1}, {disk, synced}}
	var said, unpaired []string
	for _, p := range pairs {
		var ahead, behind, level []string
		for _, m := range jsMetrics {
			a, b := m.of(p.mesh), m.of(p.js)
			n := min(len(a), len(b))
			if n == 0 {
				continue
			}
			x := row{group: "jetstream-vs", key: "vs-jetstream", name: fmt.Sprintf("%s, %s", m.title(), p.mesh.name), unit: m.unit,
				format: m.format, runs: a, base: p.js.name, baseRuns: b}
			for i := range n {
				x.ratioRuns = append(x.ratioRuns, a[i]/b[i])
			}
			if g, ok := jsGoals[goalKey{p.mesh.short, p.js.short, m.what}]; ok {
				x.goal, x.met = g.text, g.met
			}
			r.add(x)
			ratio := median(x.ratioRuns)
			gain := ratio // > 1: meshpool ahead
			if !m.more {
				gain = 1 / ratio
			}
			item := fmt.Sprintf("%s (%.2f×)", m.what, ratio)
			switch {
			case gain > 1.1:
				ahead = append(ahead, item)
			case gain < 1/1.1:
				behind = append(behind, item)
			default:
				level = append(level, item)
			}
		}
		if len(ahead)+len(behind)+len(level) == 0 {
			unpaired = append(unpaired, fmt.Sprintf("%s against %s", p.mesh.short, p.js.short))
			continue
		}
		var parts []string
		for _, v := range []struct {
			word  string
			items []string
		}{{"ahead in", ahead}, {"behind in", behind}, {"level in", level}} {
			if len(v.items) > 0 {
				parts = append(parts, v.word+" "+strings.Join(v.items, ", "))
			}
		}
		said = append(said, fmt.Sprintf("Against %s, %s is %s.", p.js.short, p.mesh.short, strings.Join(parts, "; ")))
	}
	if len(said) > 0 {
		r.note("jetstream-vs", "In plain words (ratios meshpool ÷ JetStream, the medians above; ahead: more jobs/s, or less time or "+
			"CPU per job, by more than 10 %%; level: within 10 %%, about the spread of runs on this machine): %s", strings.Join(said, " "))
		r.note("jetstream-vs", "Not like for like, and said here so that no ratio is read as more than it is: JetStream R3 keeps three "+
			"copies of each job on three servers, meshpool durable one, in a 1-member etcd, except on the line with 3 etcd members, which "+
			"keeps three, as R3; meshpool --durability none keeps "+
			"nothing, JetStream R1 stores every job; meshpool's submissions are idempotent by uuid, the JetStream jobs carry no "+
			"Nats-Msg-Id (no deduplication). The baselines are not from the same runs as meshpool's figures: meshpool's come from the "+
			"shared and disk groups and JetStream's from the jetstream group, minutes apart, and each ratio divides run i by run i; "+
			"only the line with 3 etcd members is measured in the jetstream group, right after R3 in each run.")
	}
	if len(unpaired) > 0 {
		r.note("jetstream", "Not compared in this run, one side not measured (meshpool's figures come from the groups shared and "+
			"disk, JetStream's from the group jetstream): %s.", strings.Join(unpaired, "; "))
	}
}

// title is what with a capital letter.
func (m metric) title() string { return strings.ToUpper(m.what[:1]) + m.what[1:] }

// The short names of the series the goals are on.
const (
	jsR1Short       = "JetStream R1"
	jsR3Short       = "JetStream R3"
	replicatedShort = "meshpool durable on 3 etcd members"
)

// goalKey names one comparison: meshpool's series, JetStream's, a metric.
type goalKey struct{ mesh, js, what string }

type goal struct {
	text string
	met  func(med, hi, ratio float64) bool
}

// atLeast and atMost are goals on the ratio meshpool ÷ JetStream; under
// is one on meshpool's own median.
func atLeast(x float64, js string) goal {
	return goal{fmt.Sprintf("≥ %.1f× %s", x, js), func(_, _, ratio float64) bool { return ratio >= x }}
}

func atMost(x float64, js string) goal {
	return goal{fmt.Sprintf("≤ %.1f× %s", x, js), func(_, _, ratio float64) bool { return ratio <= x }}
}

func under(x float64, unit string) goal {
	return goal{fmt.Sprintf("≤ %.0f %s", x, unit), func(med, _, _ float64) bool { return med <= x }}
}

// jsGoals are issue 15's goals, each on the comparison it names.
var jsGoals = map[goalKey]goal{
	{"meshpool durable", jsR1Short, "throughput"}:          atLeast(0.5, "JetStream R1"),
	{"meshpool durable", jsR1Short, "CPU per job"}:         under(50, "µs/job"),
	{"meshpool durable, batched", jsR1Short, "throughput"}: atLeast(1, "JetStream R1"),
	{"meshpool durable", jsR3Short, "latency p50"}:         atMost(1, "JetStream R3"),
	{replicatedShort, jsR3Short, "throughput"}:             atLeast(1, "JetStream R3"),
	{replicatedShort, jsR3Short, "latency p50"}:            atMost(1, "JetStream R3"),
	{"meshpool non-durable", jsR1Short, "throughput"}:      atLeast(1, "JetStream R1"),
	{"meshpool non-durable", jsR1Short, "latency p50"}:     atMost(1.5, "JetStream R1"),
	{"meshpool non-durable", jsR1Short, "CPU per job"}:     under(25, "µs/job"),
}
