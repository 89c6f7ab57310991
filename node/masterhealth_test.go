package node_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// withLogs has the nodes log into logs (text format), and to stderr too
// with MESHPOOL_TEST_LOG set.
func withLogs(logs *testutil.Buffer) func(*node.Config) {
	return func(cfg *node.Config) {
		var w io.Writer = logs
		if os.Getenv("MESHPOOL_TEST_LOG") != "" {
			w = io.MultiWriter(logs, os.Stderr)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// resultsUnder waits for a result recorded under term, seen through n.
func resultsUnder(t *testing.T, n *node.Node, term int64) {
	t.Helper()
	res := watchResults(t, n)
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("a result under term %d", term), func() bool {
		return res.count(func(r message.Result) bool { return r.Term == term }) > 0
	})
}

// An election key without a lease, older than every candidate, put by hand
// before any node starts: the nodes delete it (one warning naming the
// key), elect a real master, and it dispatches.
func TestLeaselessElectionKeyIsDeleted(t *testing.T) {
	logs := &testutil.Buffer{}
	c := newCluster(t, withLogs(logs))
	key := keyspace.Election(c.cfg.Prefix) + "/x"
	if _, err := c.cli.Put(t.Context(), key, "y"); err != nil {
		t.Fatal(err)
	}
	master, _ := c.startN(3)
	term := master.Status().Dispatch.Term
	resultsUnder(t, master, term)
	if n := len(logs.Lines("deleted an election key without a lease", "key="+key)); n != 1 {
		t.Fatalf("%d warnings naming the deleted key %s, want 1", n, key)
	}
	resp, err := c.cli.Get(t.Context(), key)
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the key without a lease is still there (err %v)", err)
	}
	removed := 0.0
	for _, n := range c.running() {
		if code, body := httpGet(t, n, "/readyz"); code != http.StatusOK {
			t.Errorf("%s /readyz: %d %q", n.ID(), code, body)
		}
		m, _ := scrape(t, n)
		removed += m["meshpool_election_keys_removed_total"]
	}
	if removed != 1 {
		t.Errorf("meshpool_election_keys_removed_total sums to %v over the nodes, want 1", removed)
	}
}

// A key of another process under the election prefix, held with a live
// lease and older than every candidate, names a master that is no member:
// /readyz says so (503), as do /status and /metrics, and the logs warn
// once. It is not deleted; when its lease ends a node leads.
func TestForeignElectionKeyIsReported(t *testing.T) {
	logs := &testutil.Buffer{}
	c := newCluster(t, withLogs(logs))
	lease, err := c.cli.Grant(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	// Named after its lease, as concurrency names a candidate's key: only
	// the membership shows that no node holds it.
	key := keyspace.Election(c.cfg.Prefix) + "/" + strconv.FormatInt(int64(lease.ID), 16)
	put, err := c.cli.Put(t.Context(), key, "intruder", clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*node.Node{c.start(), c.start()}
	reason := fmt.Sprintf("master intruder (term %d) is not a live member: no registered node has that ID", put.Header.Revision)
	for _, n := range nodes {
		testutil.Eventually(t, 10*time.Second, n.ID()+" serves HTTP", func() bool { return n.Status().HTTPURL != "" })
		testutil.Eventually(t, 10*time.Second, n.ID()+" /readyz reports the foreign master", func() bool {
			code, body := httpGet(t, n, "/readyz")
			return code == http.StatusServiceUnavailable && string(body) == reason+"\n"
		})
		var s node.Status
		getJSON(t, n, "/status", &s)
		if s.MasterProblem != reason || s.Master.ID != "intruder" || s.IsMaster {
			t.Errorf("%s /status: master %+v, is_master %v, master_problem %q", n.ID(), s.Master, s.IsMaster, s.MasterProblem)
		}
		if m, _ := scrape(t, n); m["meshpool_master_not_member"] != 1 {
			t.Errorf("%s meshpool_master_not_member = %v, want 1", n.ID(), m["meshpool_master_not_member"])
		}
		if k := len(logs.Lines("master is not a live member", "node="+n.ID())); k != 1 {
			t.Errorf("%s warned %d times, want 1", n.ID(), k)
		}
	}
	if resp, err := c.cli.Get(t.Context(), key); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the foreign key with a live lease is gone (err %v)", err)
	}

	if _, err := c.cli.Revoke(t.Context(), lease.ID); err != nil {
		t.Fatal(err)
	}
	master := c.waitConverged(10 * time.Second)
	resultsUnder(t, master, master.Status().Dispatch.Term)
	for _, n := range nodes {
		if code, body := httpGet(t, n, "/readyz"); code != http.StatusOK {
			t.Errorf("%s /readyz after the foreign key went: %d %q", n.ID(), code, body)
		}
		if m, _ := scrape(t, n); m["meshpool_master_not_member"] != 0 {
			t.Errorf("%s meshpool_master_not_member = %v after the foreign key went", n.ID(), m["meshpool_master_not_member"])
		}
	}
}

// replaceEtcd stops the cluster's etcd and starts an empty one on the same
// ports: its data wiped, as an operator restoring nothing would.
func (c *cluster) replaceEtcd() {
	c.t.Helper()
	c.etcd.Replace()
}

// etcd replaced by an empty one under a running cluster: within a few TTLs
// one master is elected, every node's /status names it, it dispatches, and
// the mastership does not flap.
func TestEtcdReplacedByAnEmptyOne(t *testing.T) {
	c := newCluster(t, nil)
	// A cluster that has run a while: revisions and terms are well above
	// what the new etcd reaches soon.
	for i := range 100 {
		if _, err := c.cli.Put(t.Context(), "/other/key", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := c.startN(3)
	oldTerm := old.Status().Dispatch.Term
	resultsUnder(t, old, oldTerm)
	promotions := func() float64 {
		sum := 0.0
		for _, n := range c.running() {
			m, _ := scrape(t, n)
			sum += m["meshpool_promotions_total"]
		}
		return sum
	}
	before := promotions()

	c.replaceEtcd()
	testutil.Eventually(t, 10*c.cfg.TTL, "the old master steps down", func() bool {
		return old.Status().Dispatch.Term != oldTerm
	})
	master := c.waitConverged(10 * c.cfg.TTL)
	term := master.Status().Dispatch.Term
	t.Logf("%s is master with term %d after the replacement (%s had term %d)", master.ID(), term, old.ID(), oldTerm)
	resultsUnder(t, master, term)
	for _, n := range c.running() {
		var s node.Status
		getJSON(t, n, "/status", &s)
		if s.Master != (election.Leader{ID: master.ID(), Term: term}) || s.MasterProblem != "" {
			t.Errorf("%s /status: master %+v (problem %q), want %s term %d", n.ID(), s.Master, s.MasterProblem, master.ID(), term)
		}
		if m, _ := scrape(t, n); m["meshpool_etcd_replacements_total"] < 1 {
			t.Errorf("%s did not count the replacement", n.ID())
		}
	}
	if p := promotions() - before; p >= 5 {
		t.Fatalf("%v promotions after the replacement, want a few", p)
	}
}
