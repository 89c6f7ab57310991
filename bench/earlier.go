package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// earlier is what the handlers group compares the Go handler with: the
// durable figures of an earlier report (a BENCHMARKS.md this bench wrote),
// each the median that report printed, and the spread of its throughput.
type earlier struct {
	file, meshpool, measured      string
	durable, durableLo, durableHi float64 // tasks/s
	cpu                           float64 // µs per durable task, all processes
	p50, p99                      float64 // ms, durable, one task in flight
}

// readEarlier reads the figures of the report at path: the rows "Durable
// throughput (…)", "all processes" of the CPU table (its durable column)
// and "Durable submit → result p50/p99".
func readEarlier(path string) (earlier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return earlier{}, fmt.Errorf("cannot read the earlier report: %w", err)
	}
	e := earlier{file: path}
	durableCol := -1 // in the last pivot table's header
	var errs []error
	num := func(what, cell string) float64 {
		first, _, _ := strings.Cut(cell, " ")
		v, err := strconv.ParseFloat(first, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", what, cell))
		}
		return v
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Measured by "); ok {
			if _, after, ok := strings.Cut(v, " on "); ok {
				e.measured, _, _ = strings.Cut(after, ";")
			}
			continue
		}
		c := cells(line)
		switch {
		case len(c) < 2:
		case c[0] == "meshpool":
			e.meshpool = c[1]
		case c[0] == "" && c[1] == "unit":
			durableCol = slices.Index(c, "durable")
		case c[0] == "all processes" && durableCol > 0 && durableCol < len(c):
			e.cpu = num("CPU per durable task", c[durableCol])
		case len(c) < 5:
		case strings.HasPrefix(c[0], "Durable throughput ("):
			e.durable, e.durableLo, e.durableHi = num("durable throughput", c[2]), num("durable throughput", c[3]), num("durable throughput", c[4])
		case strings.HasPrefix(c[0], "Durable submit → result p50"):
			e.p50 = num("durable p50", c[2])
		case strings.HasPrefix(c[0], "Durable submit → result p99"):
			e.p99 = num("durable p99", c[2])
		}
	}
	for _, f := range []struct {
		v    float64
		name string
	}{{e.durable, "durable throughput"}, {e.cpu, "CPU per durable task of all processes"}, {e.p50, "durable p50"}, {e.p99, "durable p99"}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("no %s", f.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return earlier{}, fmt.Errorf("%s is not a report with the durable figures: %w", path, err)
	}
	return e, nil
}

// cells splits a Markdown table line into its trimmed cells; nil when line
// is not one.
func cells(line string) []string {
	if len(line) < 2 || line[0] != '|' || line[len(line)-1] != '|' {
		return nil
	}
	c := strings.Split(line[1:len(line)-1], "|")
	for i := range c {
		c[i] = strings.TrimSpace(c[i])
	}
	return c
}
