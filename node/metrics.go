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
// the latency histogram, every metric reads a counter or a state the node
// keeps anyway, at scrape time.
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
	// running reads from the running components, or 0 when Run is not running.
	running := func(f func(p *parts) float64) func() float64 {
		return func() float64 {
			if p := n.parts.Load(); p != nil {
				return f(p)
			}
			return 0
		}
	}
	count := func(v interface{ Load() int64 }) func() float64 {
		return func() float64 { return float64(v.Load()) }
	}
	st := &n.stats
	gauges := []struct {
		name, help string
		f          func() float64
	}{
		{"members", "Registered nodes this node knows, itself included.", running(func(p *parts) float64 {
			mem, _ := p.registry.Membership()
			return float64(len(mem.Members))
		})},
		{"is_master", "1 while this node is the master, else 0.", func() float64 {
			if n.leading.Load() != 0 {
				return 1
			}
			return 0
		}},
		{"term", "The newest election term this node knows: the current master's term.", running(func(p *parts) float64 {
			leader, _ := p.election.Leader()
			return float64(leader.Term)
		})},
		{"master_not_member", "1 while the master etcd names is not a live member (see master_problem in /status), else 0.", func() float64 {
			if n.master.get() != "" {
				return 1
			}
			return 0
		}},
		{"routes", "Peers this node's NATS server has a live route with.", running(func(p *parts) float64 {
			return float64(len(p.broker.Routes()))
		})},
		{"tasks_in_flight", "Tasks the master accepted whose result is not recorded yet.", count(&st.inFlight)},
		{"worker_tasks_in_flight", "Tasks this node is working as a worker.", running(func(p *parts) float64 {
			return float64(p.worker.inFlight.Load())
		})},
	}
	counters := []struct {
		name, help string
		f          func() float64
	}{
		{"tasks_dispatched_total", "Tasks the master handed to a worker that acked them, re-placements included.", count(&st.dispatched)},
		{"tasks_resent_total", "Tasks sent again to their worker, unchanged, because their submitter asked after them: a task or result may be lost on a route.", count(&st.resent)},
		{"tasks_redispatched_total", "Placements after a task's first: its worker left or timed out, or a new master resumed it.", count(&st.redispatched)},
		{"tasks_completed_total", "Task results the master recorded.", count(&st.completed)},
		{"tasks_refused_total", "Tasks this node refused as a worker (stale term, wrong executor, malformed, stopping).", running(func(p *parts) float64 {
			return float64(p.worker.refused.Load())
		})},
		{"worker_tasks_completed_total", "Tasks this node finished as a worker.", running(func(p *parts) float64 {
			return float64(p.worker.completed.Load())
		})},
		{"submissions_accepted_total", "Submissions the master recorded and acknowledged.", count(&st.accepted)},
		{"submissions_duplicate_total", "Submissions of a uuid the master already knew, not run again.", count(&st.duplicates)},
		{"submissions_refused_total", "Submissions the master refused as invalid.", count(&st.refused)},
		{"results_duplicate_total", "Results for tasks already recorded, suppressed by the master.", count(&st.dupResults)},
		{"results_bad_total", "Malformed results the master refused.", count(&st.badResults)},
		{"stream_refused_total", "Messages on results or events that /stream refused to relay: malformed or invalid.", count(&n.streamRefused)},
		{"results_refused_total", "Well-formed results the master refused: not from a sending of a pending task (executor, term, attempt), another number, or not the work rule's answer.", count(&st.refusedResults)},
		{"results_after_timeout_total", "Results recorded from a worker whose sending of the task had timed out: --task-timeout is shorter than the work.", count(&st.lateResults)},
		{"submissions_conflict_total", "Submissions of a known uuid with another number or durability, refused.", count(&st.conflicts)},
		{"submissions_bad_reply_total", "Submissions dropped unanswered because their reply subject is one of meshpool's own.", count(&st.badReplies)},
		{"record_failures_total", "Task writes to etcd that failed (not fenced).", count(&st.recordFailures)},
		{"nats_reconnects_total", "Reconnects of this node's own client connection to its NATS server.", running(func(p *parts) float64 {
			return float64(p.broker.Conn().Stats().Reconnects)
		})},
		{"node_records_skipped_total", "Node records (each version once) left out of the membership: bad, or of another cluster name.", running(func(p *parts) float64 {
			return float64(p.registry.SkippedRecords())
		})},
		{"etcd_reregistrations_total", "Times this node registered in etcd again after losing its lease or key.", running(func(p *parts) float64 {
			return float64(max(p.registry.Registrations()-1, 0))
		})},
		{"etcd_session_recreations_total", "Times this node created its etcd election session again after losing it.", running(func(p *parts) float64 {
			return float64(max(p.election.Sessions()-1, 0))
		})},
		{"etcd_replacements_total", "Times this node saw etcd replaced under it (revision went backwards or cluster ID changed).", running(func(p *parts) float64 {
			return float64(p.election.Replacements())
		})},
		{"promotions_total", "Times this node was promoted to master.", running(func(p *parts) float64 {
			return float64(p.election.Promotions())
		})},
		{"election_keys_removed_total", "Election keys without a lease (put by hand) this node deleted: they blocked the election.", running(func(p *parts) float64 {
			return float64(p.election.Removed())
		})},
	}
	for _, g := range gauges {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshpool_" + g.name, Help: g.help}, g.f))
	}
	for _, c := range counters {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshpool_" + c.name, Help: c.help}, c.f))
	}
	m.reg.MustRegister(m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeLatency records one task's time from dispatch to recorded result.
func (m *metrics) observeLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }
