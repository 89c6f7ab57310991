package node

import "sync/atomic"

// masterStats are the master's counters; they outlive one term.
type masterStats struct {
	accepted       atomic.Int64 // tasks recorded and acknowledged to the submitter
	duplicates     atomic.Int64 // submissions of a known uuid, not run again
	conflicts      atomic.Int64 // submissions of a known uuid with another request, refused
	refused        atomic.Int64 // submissions refused (invalid, not recorded)
	badReplies     atomic.Int64 // submissions dropped unanswered: their reply subject is one of ours
	dispatched     atomic.Int64 // tasks acked by a worker (first placement or again)
	redispatched   atomic.Int64 // placements after the first: worker left, timed out, resumed
	resent         atomic.Int64 // tasks sent again to their worker when their submitter asked after them
	completed      atomic.Int64 // results recorded
	dupResults     atomic.Int64 // results for tasks already recorded, suppressed
	badResults     atomic.Int64 // malformed results refused
	refusedResults atomic.Int64 // well-formed results refused: not from a placement of a pending task, or wrong
	lateResults    atomic.Int64 // results recorded from a worker whose placement had timed out
	skipped        atomic.Int64 // demo ticks skipped for lack of workers
	inFlight       atomic.Int64 // tasks accepted and not yet recorded done
	recordFailures atomic.Int64 // etcd writes that failed (not fenced)
	badVersion     atomic.Int64 // submissions and results of a format version this node cannot read
	overloaded     atomic.Int64 // submissions refused: --max-pending or --max-pending-bytes reached
	overQuota      atomic.Int64 // submissions refused: their submitter's --max-pending-per-submitter or share of the slots reached
	errResults     atomic.Int64 // tasks recorded failed (also in completed)
	retried        atomic.Int64 // attempts that failed with another to come: recorded retrying
	cancelled      atomic.Int64 // tasks recorded cancelled
	rerun          atomic.Int64 // failed or cancelled tasks made pending again by a retry request
	ticksFired     atomic.Int64 // schedule ticks whose task was submitted
	ticksSkipped   atomic.Int64 // schedule ticks missed while no master ran, not fired (the catch-up rule)
}

// counter is one number a node reports: on /metrics as meshpool_<metric>,
// and on /status in the field that field points to (nil when /status does
// not show it). counters is the one list of them; docs/operations.md's table
// is made from it (TestCounterTableIsDocumented).
type counter struct {
	metric string
	help   string
	gauge  bool                  // else a counter: it only grows
	value  func(n *Node) float64 // read at scrape time
	field  func(*Status) *int64
}

// counters lists every number a node reports but the latency histogram;
// built once: its functions take the node.
var counters = counterTable()

// counterTable builds counters.
func counterTable() []counter {
	st := func(f func(s *masterStats) *atomic.Int64) func(n *Node) float64 {
		return func(n *Node) float64 { return float64(f(&n.stats).Load()) }
	}
	// running reads from the running components, or 0 when Run is not running.
	running := func(f func(p *parts) int64) func(n *Node) float64 {
		return func(n *Node) float64 {
			if p := n.parts.Load(); p != nil {
				return float64(f(p))
			}
			return 0
		}
	}
	wk := func(f func(w *worker) *atomic.Int64) func(n *Node) float64 {
		return running(func(p *parts) int64 { return f(p.worker).Load() })
	}
	dispatch := func(f func(d *DispatchStatus) *int64) func(*Status) *int64 {
		return func(s *Status) *int64 { return f(&s.Dispatch) }
	}
	return []counter{
		{metric: "members", gauge: true, help: "Registered nodes this node knows, itself included.",
			value: running(func(p *parts) int64 {
				mem, _ := p.registry.Membership()
				return int64(len(mem.Members))
			})},
		{metric: "is_master", gauge: true, help: "1 while this node is the master, else 0.",
			value: func(n *Node) float64 { return boolFloat(n.leading.Load() != 0) }},
		{metric: "term", gauge: true, help: "The newest election term this node knows: the current master's term.",
			value: running(func(p *parts) int64 {
				leader, _ := p.election.Leader()
				return leader.Term
			})},
		{metric: "master_not_member", gauge: true, help: "1 while the master etcd names is not a live member (see master_problem in /status), else 0.",
			value: func(n *Node) float64 { return boolFloat(n.master.get() != "") }},
		{metric: "tls_cert_expiry_seconds", gauge: true, help: "Unix time at which this node's NATS TLS certificate expires (its NotAfter; tls_not_after in /status), 0 without TLS. Alert on meshpool_tls_cert_expiry_seconds > 0 and meshpool_tls_cert_expiry_seconds - time() < 30 * 86400.",
			value: running(func(p *parts) int64 {
				if t := p.broker.CertNotAfter(); !t.IsZero() {
					return t.Unix()
				}
				return 0
			})},
		{metric: "etcd_db_in_use_bytes", gauge: true, help: "Bytes in use in the fullest etcd member's database (etcd_space.in_use in /status), as last asked. New durable tasks are refused from --etcd-max-fill of the quota.",
			value: running(func(p *parts) int64 { return p.alarms.Space().InUse })},
		{metric: "etcd_db_quota_bytes", gauge: true, help: "That member's space quota (etcd --quota-backend-bytes; 2 GiB unset). Alert on meshpool_etcd_db_in_use_bytes / meshpool_etcd_db_quota_bytes > 0.7.",
			value: running(func(p *parts) int64 { return p.alarms.Space().Quota })},
		{metric: "routes", gauge: true, help: "Peers this node's NATS server has a live route with.",
			value: running(func(p *parts) int64 { return int64(len(p.broker.Routes())) })},
		{metric: "tasks_in_flight", gauge: true, help: "Tasks the master accepted whose result is not recorded yet.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.inFlight }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.InFlight })},
		{metric: "worker_tasks_in_flight", gauge: true, help: "Tasks this node is working as a worker.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.inFlight }),
			field: func(s *Status) *int64 { return &s.Worker.InFlight }},

		{metric: "tasks_dispatched_total", help: "Tasks the master handed to a worker that acked them, re-placements included.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.dispatched }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Dispatched })},
		{metric: "tasks_resent_total", help: "Tasks sent again to their worker, unchanged, because their submitter asked after them: a task or result may be lost on a route.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.resent }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Resent })},
		{metric: "tasks_redispatched_total", help: "Placements after a task's first: its worker left or timed out, or a new master resumed it.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.redispatched }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Redispatched })},
		{metric: "tasks_completed_total", help: "Task results the master recorded.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.completed }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Completed })},
		{metric: "tasks_refused_total", help: "Tasks this node refused as a worker (stale term, wrong executor, malformed, stopping).",
			value: wk(func(w *worker) *atomic.Int64 { return &w.refused }),
			field: func(s *Status) *int64 { return &s.Worker.Refused }},
		{metric: "worker_tasks_completed_total", help: "Tasks this node finished as a worker.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.completed }),
			field: func(s *Status) *int64 { return &s.Worker.Completed }},
		{metric: "worker_tasks_failed_total", help: "Tasks whose handler returned an error (or panicked, or timed out) on this node; also in worker_tasks_completed_total.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.failed }),
			field: func(s *Status) *int64 { return &s.Worker.Failed }},
		{metric: "worker_slots_busy", gauge: true, help: "Handlers running on this node now; at most its --slots.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.busy }),
			field: func(s *Status) *int64 { return &s.Worker.Busy }},
		{metric: "worker_slots_busy_max", gauge: true, help: "The most handlers this node ran at once since it started; never more than its --slots.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.maxBusy }),
			field: func(s *Status) *int64 { return &s.Worker.MaxBusy }},
		{metric: "worker_tasks_redelivered_total", help: "Tasks this node received again as a worker: acked, not run again.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.redelivered }),
			field: func(s *Status) *int64 { return &s.Worker.Redelivered }},
		{metric: "worker_tasks_cancelled_total", help: "Tasks this node stopped as a worker, running or waiting for a slot, because the master cancelled them; they publish no result.",
			value: wk(func(w *worker) *atomic.Int64 { return &w.cancelled }),
			field: func(s *Status) *int64 { return &s.Worker.Cancelled }},
		{metric: "submissions_accepted_total", help: "Submissions the master recorded and acknowledged.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.accepted }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Accepted })},
		{metric: "submissions_duplicate_total", help: "Submissions of a uuid the master already knew, not run again.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.duplicates }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Duplicates })},
		{metric: "submissions_refused_total", help: "Submissions the master refused as invalid.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.refused }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Refused })},
		{metric: "submissions_conflict_total", help: "Submissions of a known uuid with another kind, payload or durability, refused.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.conflicts }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Conflicts })},
		{metric: "submissions_overloaded_total", help: "Submissions refused as temporary because the master held --max-pending tasks or --max-pending-bytes of payload, or etcd had --etcd-max-fill of its quota in use.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.overloaded }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Overloaded })},
		{metric: "submissions_over_quota_total", help: "Submissions refused as temporary because their submitter held --max-pending-per-submitter tasks, or its share (1024) of the submissions in progress.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.overQuota }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.OverQuota })},
		{metric: "messages_newer_version_total", help: "Submissions and results of a newer format version than this node reads, refused: upgrade this node.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.badVersion }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.NewerVersion })},
		{metric: "results_error_total", help: "Tasks the master recorded failed: every attempt used, or a permanent error.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.errResults }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.ErrorResults })},
		{metric: "tasks_retried_total", help: "Attempts that failed (an error, a worker that left, no result in time) with another attempt to come.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.retried }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Retried })},
		{metric: "tasks_cancelled_total", help: "Tasks the master recorded cancelled.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.cancelled }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Cancelled })},
		{metric: "schedule_ticks_fired_total", help: "Schedule ticks whose task the master submitted.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.ticksFired })},
		{metric: "schedule_ticks_skipped_total", help: "Schedule ticks missed while no master ran, not fired: only the latest missed tick fires.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.ticksSkipped })},
		{metric: "tasks_rerun_total", help: "Failed or cancelled tasks made pending again by a retry request.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.rerun }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Rerun })},
		{metric: "submissions_bad_reply_total", help: "Submissions and operations dropped unanswered because their reply subject is not a reply inbox (_INBOX.…), is this master's own request inbox, or is not one of a named submitter's own (_INBOX.<submitter>.…).",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.badReplies }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.BadReplies })},
		{metric: "demo_ticks_skipped_total", help: "Demo tasks the master did not make (--task-interval) because there was no worker.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.skipped }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.Skipped })},
		{metric: "results_duplicate_total", help: "Results for tasks already recorded, suppressed by the master.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.dupResults }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.DuplicateResults })},
		{metric: "results_bad_total", help: "Malformed results the master refused.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.badResults }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.BadResults })},
		{metric: "results_refused_total", help: "Well-formed results the master refused: not from a sending of a pending task (executor, term, attempt), another kind, a demo result that is not the work rule's answer, or an error after the task timed out and went to another worker.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.refusedResults }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.RefusedResults })},
		{metric: "results_after_timeout_total", help: "Results recorded from a worker whose sending of the task had timed out: --task-timeout is shorter than the work.",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.lateResults }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.LateResults })},
		{metric: "record_failures_total", help: "Task writes to etcd that failed (not fenced).",
			value: st(func(s *masterStats) *atomic.Int64 { return &s.recordFailures }),
			field: dispatch(func(d *DispatchStatus) *int64 { return &d.RecordFailures })},
		{metric: "stream_refused_total", help: "Messages on results or events that /stream refused to relay: malformed or invalid.",
			value: func(n *Node) float64 { return float64(n.streamRefused.Load()) },
			field: func(s *Status) *int64 { return &s.StreamRefused }},
		{metric: "http_connections_refused_total", help: "HTTP connections closed at once because the listener held 256 open connections.",
			value: func(n *Node) float64 { return float64(n.httpRefused.Load()) },
			field: func(s *Status) *int64 { return &s.HTTPRefused }},
		{metric: "nats_reconnects_total", help: "Reconnects of this node's own client connection to its NATS server.",
			value: running(func(p *parts) int64 { return int64(p.broker.Conn().Stats().Reconnects) })},
		{metric: "node_records_skipped_total", help: "Node records (each version once) left out of the membership: bad, or of another cluster name.",
			value: running(func(p *parts) int64 { return p.registry.SkippedRecords() }),
			field: func(s *Status) *int64 { return &s.SkippedRecords }},
		{metric: "etcd_reregistrations_total", help: "Times this node registered in etcd again after losing its lease or key.",
			value: running(func(p *parts) int64 { return max(p.registry.Registrations()-1, 0) })},
		{metric: "etcd_session_recreations_total", help: "Times this node created its etcd election session again after losing it.",
			value: running(func(p *parts) int64 { return max(p.election.Sessions()-1, 0) })},
		{metric: "etcd_replacements_total", help: "Times this node saw etcd replaced under it (revision went backwards or cluster ID changed).",
			value: running(func(p *parts) int64 { return p.election.Replacements() })},
		{metric: "promotions_total", help: "Times this node was promoted to master.",
			value: running(func(p *parts) int64 { return p.election.Promotions() })},
		{metric: "election_keys_removed_total", help: "Election keys without a lease (put by hand) this node deleted: they blocked the election.",
			value: running(func(p *parts) int64 { return p.election.Removed() })},
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
