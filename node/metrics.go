package node

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshpool/meshpool/taskstore"
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
	byKind  *prometheus.HistogramVec

	mu    sync.Mutex
	kinds map[string]struct{} // the kinds latency has a series for
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		kinds: make(map[string]struct{}),
		reg:   prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshpool_task_latency_seconds",
			Help:    "Time from a worker's ack of a task's last attempt to its result being recorded done, on the master.",
			Buckets: latencyBuckets,
		}),
		byKind: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshpool_task_kind_latency_seconds",
			Help:    "meshpool_task_latency_seconds per kind.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
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
	m.reg.MustRegister(m.latency, m.byKind, kindCollector{n},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeLatency records one done task's time from dispatch to recorded
// result. Kinds beyond maxKindsCounted count as otherKinds: each kind is
// a series, and kinds are any submitter's words.
func (m *metrics) observeLatency(kind string, d time.Duration) {
	m.mu.Lock()
	if _, ok := m.kinds[kind]; !ok {
		if len(m.kinds) >= maxKindsCounted {
			kind = otherKinds
		} else {
			m.kinds[kind] = struct{}{}
		}
	}
	m.mu.Unlock()
	m.latency.Observe(d.Seconds())
	m.byKind.WithLabelValues(kind).Observe(d.Seconds())
}

// kindCollector reports the master's tasks per kind, labelled by kind:
// pending (accepted, not done), waiting for a free slot, and the kinds of
// pending tasks no member runs. Only the master has them.
type kindCollector struct{ n *Node }

var (
	pendingDesc   = prometheus.NewDesc("meshpool_tasks_pending", "Tasks the master accepted and has not recorded done, per kind.", []string{"kind"}, nil)
	waitingDesc   = prometheus.NewDesc("meshpool_tasks_waiting", "Pending tasks that wait for a worker of their kind with a free slot, per kind.", []string{"kind"}, nil)
	unhandledDesc = prometheus.NewDesc("meshpool_kind_unhandled", "1 for each kind of pending task that no member runs.", []string{"kind"}, nil)
	statesDesc    = prometheus.NewDesc("meshpool_tasks", "Live tasks the master follows, per kind and state: pending, running, retrying.", []string{"kind", "state"}, nil)
	movesDesc     = prometheus.NewDesc("meshpool_task_moves_total", "Tasks the master recorded, in this term, into a state: done, failed, cancelled, retrying (one per failed attempt with another to come), per kind.", []string{"kind", "state"}, nil)
)

func (c kindCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- waitingDesc
	ch <- unhandledDesc
	ch <- statesDesc
	ch <- movesDesc
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
	for kind, states := range k.states {
		for _, st := range []taskstore.State{taskstore.Pending, taskstore.Running, taskstore.Retrying} {
			ch <- prometheus.MustNewConstMetric(statesDesc, prometheus.GaugeValue, float64(states[st]), kind, string(st))
		}
	}
	for kind, moves := range k.finished {
		for st, n := range moves {
			ch <- prometheus.MustNewConstMetric(movesDesc, prometheus.CounterValue, float64(n), kind, string(st))
		}
	}
}
