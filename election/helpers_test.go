package election_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

const (
	testPrefix = "/meshpool"
	testTTL    = 2 * time.Second
)

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, endpoint, func(c *clientv3.Config) { c.DialTimeout = 2 * time.Second })
}

// leadTracker counts the lead callbacks running at once, over all nodes.
type leadTracker struct {
	mu          sync.Mutex
	active, max int
}

func (lt *leadTracker) enter() {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.active++
	lt.max = max(lt.max, lt.active)
}

func (lt *leadTracker) leave() {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.active--
}

func (lt *leadTracker) maxActive() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.max
}

// node is one Election under Run, with a lead callback that records what it saw.
type node struct {
	t    *testing.T
	id   string
	el   *election.Election
	logs *logCounter
	lt   *leadTracker

	stepDown chan struct{}     // makes the running lead callback return early
	run      *testutil.Running // el.Run in the background

	term  atomic.Int64 // term of the running lead callback, 0 if none
	mu    sync.Mutex
	terms []int64 // terms of every lead call, in order
	cause error   // cause of the last leadership context's end
	valid bool    // the last leadership's Valid() once its context ended
}

func startNode(t *testing.T, cli *clientv3.Client, id string, lt *leadTracker) *node {
	t.Helper()
	n := &node{t: t, id: id, lt: lt, logs: newLogCounter(id), stepDown: make(chan struct{}, 1)}
	cfg := election.DefaultConfig()
	cfg.Prefix, cfg.TTL, cfg.Logger = testPrefix, testTTL, slog.New(n.logs)
	el, err := election.New(cli, id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.el = el
	n.run = testutil.Go(t, func(ctx context.Context) error { return el.Run(ctx, n.lead) })
	t.Cleanup(n.stop) // runs before Go's own check, to name the node
	return n
}

func (n *node) lead(ctx context.Context, l election.Leadership) {
	term := l.Term
	n.lt.enter()
	defer n.lt.leave()
	n.mu.Lock()
	n.terms = append(n.terms, term)
	n.mu.Unlock()
	n.term.Store(term)
	defer n.term.Store(0)
	select {
	case <-ctx.Done():
		n.mu.Lock()
		n.cause, n.valid = context.Cause(ctx), l.Valid()
		n.mu.Unlock()
	case <-n.stepDown:
	}
}

// stop ends Run and checks that it returns nil, in bounded time.
func (n *node) stop() {
	n.t.Helper()
	if err := n.run.Stop(); err != nil {
		n.t.Errorf("%s: %v", n.id, err)
	}
}

func (n *node) running() bool {
	select {
	case <-n.run.Done():
		return false
	default:
		return true
	}
}

func (n *node) leadTerms() []int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.terms...)
}

// validAtEnd is the last leadership's Valid() once its context had ended.
func (n *node) validAtEnd() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.valid
}

func (n *node) lastCause() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cause
}

func (n *node) master() election.Leader {
	l, _ := n.el.Leader()
	return l
}

// soleLeader returns the only node whose lead callback runs, or nil if
// there is none or more than one.
func soleLeader(nodes ...*node) *node {
	var leader *node
	for _, n := range nodes {
		if n.term.Load() != 0 {
			if leader != nil {
				return nil
			}
			leader = n
		}
	}
	return leader
}

// agreed waits until exactly one node leads and every node's Master names it
// with its term, and returns it.
func agreed(t *testing.T, timeout time.Duration, nodes ...*node) *node {
	t.Helper()
	var leader *node
	testutil.Eventually(t, timeout, "one leader that every node's Master names", func() bool {
		leader = soleLeader(nodes...)
		if leader == nil {
			return false
		}
		want := election.Leader{ID: leader.id, Term: leader.term.Load()}
		for _, n := range nodes {
			if n.master() != want {
				return false
			}
		}
		return true
	})
	return leader
}

// electionKeys returns the election keys of a node, oldest first.
func electionKeys(t *testing.T, cli *clientv3.Client, id string) []*kv {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, keyspace.Election(testPrefix)+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	var kvs []*kv
	for _, x := range resp.Kvs {
		if id == "" || string(x.Value) == id {
			kvs = append(kvs, &kv{key: string(x.Key), id: string(x.Value), createRev: x.CreateRevision, lease: clientv3.LeaseID(x.Lease)})
		}
	}
	return kvs
}

type kv struct {
	key, id   string
	createRev int64
	lease     clientv3.LeaseID
}

// logCounter is a slog.Handler that counts messages, and prints them with -v.
type logCounter struct {
	mu   *sync.Mutex
	n    map[string]int
	next slog.Handler
}

func newLogCounter(id string) *logCounter {
	h := &logCounter{mu: &sync.Mutex{}, n: map[string]int{}}
	if testing.Verbose() {
		h.next = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs([]slog.Attr{slog.String("node", id)})
	}
	return h
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCounter) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.n[r.Message]++
	h.mu.Unlock()
	if h.next != nil {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	if h.next != nil {
		c.next = h.next.WithAttrs(attrs)
	}
	return &c
}

func (h *logCounter) WithGroup(name string) slog.Handler {
	c := *h
	if h.next != nil {
		c.next = h.next.WithGroup(name)
	}
	return &c
}

func (h *logCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[msg]
}
