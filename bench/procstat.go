package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const clockTicks = 100 // USER_HZ on Linux

// cpuMicros is utime+stime+cutime+cstime of pid from /proc/<pid>/stat, in
// µs (with the 10 ms resolution of the clock ticks): its own CPU time and
// that of the children it has waited for, such as the process an --exec
// handler runs per task. A process without children has 0 of the latter.
func cpuMicros(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the CPU time of %d: %w", pid, err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 15 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state); utime, stime, cutime and cstime are
	// fields 14 to 17.
	var ticks int64
	for _, f := range fields[11:15] {
		t, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse /proc/%d/stat: %w", pid, err)
		}
		ticks += t
	}
	return float64(ticks) * 1e6 / clockTicks, nil
}

// selfCPUMicros is the user+system CPU time of this process, in µs.
func selfCPUMicros() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cannot read this process's CPU time: %w", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3, nil
}

// vmRSS is VmRSS from /proc/<pid>/status, in MiB.
func vmRSS(pid int) (float64, error) {
	m, err := memory(pid)
	return m.rss, err
}

// mem is a process's resident memory in MiB: all of it, and the anonymous
// (heap, stacks) and file-backed (mapped files: the binary) parts.
type mem struct{ rss, anon, file float64 }

// memory reads VmRSS, RssAnon and RssFile from /proc/<pid>/status.
func memory(pid int) (mem, error) {
	var m mem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("cannot read the memory of %d: %w", pid, err)
	}
	fields := map[string]*float64{"VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file}
	found := 0
	for line := range strings.Lines(string(b)) {
		for name, dst := range fields {
			if v, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					return m, fmt.Errorf("cannot parse %s of %d: %w", name, pid, err)
				}
				*dst = kb / 1024
				found++
			}
		}
	}
	if found != len(fields) {
		return m, fmt.Errorf("no VmRSS, RssAnon or RssFile for %d", pid)
	}
	return m, nil
}

// machineTicks is the busy and total CPU time of the whole machine, all
// cores, from the first line of /proc/stat, in clock ticks.
func machineTicks() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("cannot parse /proc/stat")
	}
	// user nice system idle iowait irq softirq steal
	for i, f := range fields[1:9] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("cannot parse /proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}
