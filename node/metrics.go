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
	m.reg.MustRegister(m.latency, kindCollector{n},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeLatency records one task's time from dispatch to recorded result.
func (m *metrics) observeLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }

// kindCollector reports the master's tasks per kind, labelled by kind:
// pending (accepted, not done), waiting for a free slot, and the kinds of
// pending tasks no member runs. Only the master has them.
type kindCollector struct{ n *Node }

var (
	pendingDesc   = prometheus.NewDesc("meshpool_tasks_pending", "Tasks the master accepted and has not recorded done, per kind.", []string{"kind"}, nil)
	waitingDesc   = prometheus.NewDesc("meshpool_tasks_waiting", "Pending tasks that wait for a worker of their kind with a free slot, per kind.", []string{"kind"}, nil)
	unhandledDesc = prometheus.NewDesc("meshpool_kind_unhandled", "1 for each kind of pending task that no member runs.", []string{"kind"}, nil)
)

func (c kindCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- waitingDesc
	ch <- unhandledDesc
}

func (c kindCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.n.table.Load()
	if t == nil {
		return
	}
	k := t.kinds()
	for kind, count := range k.pending {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(count), kind)
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(k.waiting[kind]), kind)
	}
	for _, kind := range k.unhandled {
		ch <- prometheus.MustNewConstMetric(unhandledDesc, prometheus.GaugeValue, 1, kind)
	}
}
