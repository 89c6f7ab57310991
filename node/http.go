package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshpool/meshpool/broker"

	"github.com/meshpool/meshpool/registry"
)

// The HTTP server's limits. Every endpoint answers from memory at once, so
// the bounds are generous for a slow reader and still let a stuck client go.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 30 * time.Second // an idle keep-alive connection holds a slot (maxHTTPConns)
)

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
	}
}

// httpHandler serves the operators' endpoints:
//
//	/          the live page: members, master, results as they come
//	/stream    results and cluster events as server-sent events
//	/healthz   200 while the process serves HTTP
//	/readyz    200 when registered, routed to every member (but one that
//	           has had no route for unroutedGrace: see routeWatch), a master
//	           is known that is a live member, and etcd raises no alarm; else
//	           503 with the reason on one line
//	/status    the Status, as JSON
//	/metrics   Prometheus text format
//	/nats/varz, /nats/routez, /nats/connz, /nats/subsz
//	           the embedded NATS server's monitoring, which has no port of its own
//	/debug/pprof/
//	           Go's profiles, with --pprof (Config.Profiling) only
func (n *Node) httpHandler(br *broker.Broker, st *streams) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", servePage)
	mux.Handle("GET /stream", st)
	n.healthHandler(mux)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(n.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	// The server's handlers need no monitoring listener: the request
	// counters they bump are made in server.NewServer.
	srv := br.Server()
	mux.HandleFunc("GET /nats/varz", srv.HandleVarz)
	mux.HandleFunc("GET /nats/routez", srv.HandleRoutez)
	mux.HandleFunc("GET /nats/connz", srv.HandleConnz)
	mux.HandleFunc("GET /nats/subsz", srv.HandleSubsz)
	if n.cfg.Profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// healthHandler adds /healthz and /readyz to mux and returns it: the
// endpoints every listener serves.
func (n *Node) healthHandler(mux *http.ServeMux) *http.ServeMux {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if reason := n.notReady(); reason != "" {
			writeText(w, http.StatusServiceUnavailable, reason)
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
	return mux
}

// notReady returns why the node cannot take part in the cluster yet, or ""
// when it is registered, routed to every other member it knows, knows
// the master, a live member, and etcd raises no alarm.
func (n *Node) notReady() string {
	p := n.parts.Load()
	if p == nil {
		return "not running"
	}
	if reason := p.alarms.Reason(); reason != "" {
		return reason // first: it is also why the rest fails
	}
	if !p.registry.Registered() {
		return "not registered"
	}
	mem, _ := p.registry.Membership()
	if id := n.unrouted.blocking(mem.Others(n.id), p.broker.Routes(), time.Now()); id != "" {
		return "no route to " + id
	}
	if leader, _ := p.election.Leader(); leader.ID == "" {
		return "no master"
	}
	return n.master.get()
}

func writeText(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(line + "\n"))
}

// unroutedGrace is how long a member without a route to this node keeps it
// not ready: long enough for a joining node to be routed in, short enough
// that one registered member that never routes (misconfigured, or a fake
// record) does not keep every node unready for as long as it is
// registered. It is then listed in /status as unrouted instead.
var unroutedGrace = 30 * time.Second

// routeWatch remembers since when each member has had no route to this node.
type routeWatch struct {
	mu    sync.Mutex
	since map[string]time.Time // member ID → since when it has had no route; absent when routed
}

// blocking returns the first of members without a route for less than
// unroutedGrace, or ""; it forgets the members that left or are routed.
func (w *routeWatch) blocking(members []registry.Record, routes []string, now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since == nil {
		w.since = make(map[string]time.Time)
	}
	seen := make(map[string]bool, len(members))
	block := ""
	for _, r := range members {
		seen[r.ID] = true
		if _, found := slices.BinarySearch(routes, r.ID); found {
			delete(w.since, r.ID)
			continue
		}
		since, ok := w.since[r.ID]
		if !ok {
			since = now
			w.since[r.ID] = now
		}
		if block == "" && now.Sub(since) < unroutedGrace {
			block = r.ID
		}
	}
	for id := range w.since {
		if !seen[id] {
			delete(w.since, id)
		}
	}
	return block
}

// list returns the members without a route for unroutedGrace or longer, sorted.
func (w *routeWatch) list(now time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for id, since := range w.since {
		if now.Sub(since) >= unroutedGrace {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
