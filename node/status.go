package node

import (
	"time"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// Status is what a node knows about itself and the cluster at one moment.
type Status struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	IP         string            `json:"ip"`
	HTTPURL    string            `json:"http_url,omitempty"`
	Running    bool              `json:"running"`
	Registered bool              `json:"registered"`
	Uptime     string            `json:"uptime"`
	Master     election.Leader   `json:"master"`
	IsMaster   bool              `json:"is_master"`
	Members    []registry.Record `json:"members"`
	Routes     []string          `json:"routes"`
	// Unrouted lists the members this node has had no route to for longer
	// than a grace (30 s): /readyz no longer waits for them.
	Unrouted   []string `json:"unrouted,omitempty"`
	EtcdAlarms []string `json:"etcd_alarms,omitempty"` // etcd's alarms raised now, e.g. ["NOSPACE"]
	// EtcdSpace is how full the fullest etcd member's database is, as last
	// asked (every 3 s); from --etcd-max-fill of its quota in use, the
	// master refuses new durable tasks.
	EtcdSpace taskstore.Space `json:"etcd_space"`
	// TLSNotAfter is when this node's NATS TLS certificate expires (absent
	// without TLS): renew it before then (docs/security.md).
	TLSNotAfter time.Time      `json:"tls_not_after,omitzero"`
	Worker      WorkerStatus   `json:"worker"`
	Dispatch    DispatchStatus `json:"dispatch"`

	// SkippedRecords counts node records left out of Members (each version
	// once): bad ones, and ones of another cluster name.
	SkippedRecords int64 `json:"skipped_node_records"`
	// StreamRefused counts messages on results or events that /stream refused to relay.
	StreamRefused int64 `json:"stream_refused"`
	// HTTPRefused counts HTTP connections closed at once because a
	// listener held its most open connections.
	HTTPRefused int64 `json:"http_connections_refused"`
	// MasterProblem says why the master is not a live member (its election
	// key has no lease or is not a candidate's, or it names no registered
	// node); "" when it is, or when there is no master.
	MasterProblem string `json:"master_problem,omitempty"`
}

// WorkerStatus counts this node's work as a worker.
type WorkerStatus struct {
	InFlight    int64 `json:"in_flight"`
	Busy        int64 `json:"slots_busy"`
	MaxBusy     int64 `json:"slots_busy_max"`
	Completed   int64 `json:"completed"`
	Failed      int64 `json:"failed"`
	Refused     int64 `json:"refused"`
	Redelivered int64 `json:"redelivered"`
	Cancelled   int64 `json:"cancelled"`
	Term        int64 `json:"newest_term"`
}

// DispatchStatus counts this node's work as master, over all its terms.
type DispatchStatus struct {
	Term         int64 `json:"term,omitempty"`
	Accepted     int64 `json:"accepted"`
	Duplicates   int64 `json:"duplicate_submissions"`
	Conflicts    int64 `json:"conflicting_submissions"`
	Refused      int64 `json:"refused_submissions"`
	BadReplies   int64 `json:"bad_reply_subjects"`
	InFlight     int64 `json:"in_flight"`
	Dispatched   int64 `json:"dispatched"`
	Redispatched int64 `json:"redispatched"`
	// Resent counts tasks sent again to their worker because their
	// submitter asked after them (a task or result may be lost on a route).
	Resent           int64 `json:"resent"`
	Completed        int64 `json:"completed"`
	DuplicateResults int64 `json:"duplicate_results_suppressed"`
	BadResults       int64 `json:"bad_results"`
	RefusedResults   int64 `json:"refused_results"`
	LateResults      int64 `json:"results_after_timeout"`
	RecordFailures   int64 `json:"record_failures"`
	Skipped          int64 `json:"skipped_no_worker"`
	Overloaded       int64 `json:"overloaded_submissions"`
	OverQuota        int64 `json:"over_quota_submissions"`
	NewerVersion     int64 `json:"newer_version_messages"`
	ErrorResults     int64 `json:"error_results"`
	Retried          int64 `json:"retried"`
	Cancelled        int64 `json:"cancelled"`
	Rerun            int64 `json:"rerun"`
	// Pending counts the tasks accepted and not done per kind, Waiting
	// those of them waiting for a free slot, and Unhandled lists the kinds
	// of pending tasks that no member runs. Only the master fills them.
	Pending   map[string]int `json:"pending,omitempty"`
	Waiting   map[string]int `json:"waiting,omitempty"`
	Unhandled []string       `json:"unhandled_kinds,omitempty"`
	// Queues is, per kind, the live tasks by state (pending, running,
	// retrying) and the tasks recorded done, failed, cancelled in this term.
	Queues map[string]map[string]int64 `json:"queues,omitempty"`
	// Failures are the latest failed attempts, newest first, with what
	// they led to (retrying or failed).
	Failures []failedAttempt `json:"failures,omitempty"`
}

// Status reports the node's current view. Before Run and after it returns,
// only the identity fields are set.
func (n *Node) Status() Status {
	s := Status{ID: n.id, Name: n.name, IP: n.cfg.Advertise}
	p := n.parts.Load()
	if p == nil {
		return s
	}
	mem, _ := p.registry.Membership()
	leader, _ := p.election.Leader()
	term := n.leading.Load()
	s.Running = true
	s.HTTPURL = p.httpURL
	s.Registered = p.registry.Registered()
	s.Uptime = time.Since(n.started).Round(time.Second).String()
	s.Master = leader
	s.IsMaster = term != 0
	s.EtcdAlarms = p.alarms.Active()
	s.EtcdSpace = p.alarms.Space()
	s.MasterProblem = n.master.get()
	s.Members = mem.Members
	s.Routes = p.broker.Routes()
	s.Unrouted = n.unrouted.list(time.Now())
	s.TLSNotAfter = p.broker.CertNotAfter()
	s.Worker.Term = p.worker.term.Load()
	s.Dispatch.Term = term
	if t := n.table.Load(); t != nil {
		k := t.kinds()
		s.Dispatch.Pending, s.Dispatch.Waiting, s.Dispatch.Unhandled = k.pending, k.waiting, k.unhandled
		s.Dispatch.Queues, s.Dispatch.Failures = k.queues(), t.latestFailures()
	}
	for _, c := range counters {
		if c.field != nil {
			*c.field(&s) = int64(c.value(n))
		}
	}
	return s
}
