package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// latencyBuckets cover a task's time from dispatch to recorded result, from
// a millisecond to a minute (past the default task timeout).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics is a node's Prometheus registry. Each node has its own (never the
// global default one), so several nodes can live in one process. Apart from
// the latency histogram, every metric is one of counters, read at scrape
// time from what the node keeps anyway.
type metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshpool_task_latency_seconds",
			Help:    "Time from a worker's ack of a task to its result being recorded, on the master.",
			Buckets: latencyBuckets,
		}),
	}
	for _, c := range counters {
		f := func() float64 { return c.value(n) }
		name := "meshpool_" + c.metric
		if c.gauge {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: c.help}, f))
		} else {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: c.help}, f))
		}
	}
	m.reg.MustRegister(m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeLatency records one task's time from dispatch to recorded result.
func (m *metrics) observeLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }
