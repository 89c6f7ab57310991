package main

import (
	"slices"
	"time"
)

// latencies are the p50 and p99 of a run, in milliseconds.
type latencies struct{ p50, p99 float64 }

func percentiles(ds []time.Duration) latencies {
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	return latencies{p50: at(0.5), p99: at(0.99)}
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

// median of xs.
func median(xs []float64) float64 {
	m, _, _ := spread(xs)
	return m
}
