package election_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*election.Config)
		valid bool
	}{
		{"default", func(*election.Config) {}, true},
		{"zero means default", func(c *election.Config) { *c = election.Config{} }, true},
		{"minimum ttl", func(c *election.Config) { c.TTL = 2 * time.Second }, true},
		{"ttl too short", func(c *election.Config) { c.TTL = time.Second }, false},
		{"ttl not whole seconds", func(c *election.Config) { c.TTL = 2500 * time.Millisecond }, false},
		{"prefix without leading slash", func(c *election.Config) { c.Prefix = "meshpool" }, false},
		{"prefix with trailing slash", func(c *election.Config) { c.Prefix = "/meshpool/" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := election.DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.valid && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.valid && !errors.Is(err, election.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// Three candidates: one lead callback at a time, everyone agrees on the
// master, and the term is the create revision of the leader's key.
func TestOneLeaderAmongThree(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	lt := &leadTracker{}
	var nodes []*node
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, newClient(t, srv.Endpoint()), id, lt))
	}
	leader := agreed(t, 5*time.Second, nodes...)
	term := leader.term.Load()

	testutil.Eventually(t, 5*time.Second, "three keys in the queue", func() bool {
		return len(electionKeys(t, raw, "")) == 3
	})
	keys := electionKeys(t, raw, "")
	if keys[0].id != leader.id || keys[0].createRev != term {
		t.Fatalf("oldest key is %s (create revision %d), want %s with the term %d", keys[0].id, keys[0].createRev, leader.id, term)
	}
	cur, err := election.CurrentLeader(t.Context(), raw, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := (election.Leader{ID: leader.id, Term: term}); cur != want {
		t.Fatalf("CurrentLeader = %+v, want %+v", cur, want)
	}
	if got := leader.leadTerms(); !slices.Equal(got, []int64{term}) {
		t.Fatalf("%s led terms %v, want only %d", leader.id, got, term)
	}
	for _, n := range nodes {
		if n != leader && len(n.leadTerms()) != 0 {
			t.Errorf("%s led terms %v while %s is the leader", n.id, n.leadTerms(), leader.id)
		}
	}
	for _, n := range nodes {
		n.stop()
	}
	if m := lt.maxActive(); m != 1 {
		t.Fatalf("%d lead callbacks ran at once, want 1", m)
	}
}

// A leader that stops resigns at once: another node leads well within the
// TTL, with a higher term, and the remaining nodes' Master follows.
func TestStopHandsOver(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
		startNode(t, newClient(t, srv.Endpoint()), "c", lt),
	}
	old := agreed(t, 5*time.Second, nodes...)
	oldTerm := old.term.Load()
	testutil.Eventually(t, 5*time.Second, "three keys in the queue", func() bool {
		return len(electionKeys(t, raw, "")) == 3
	})

	start := time.Now()
	old.stop()
	if !errors.Is(old.lastCause(), election.ErrStopping) {
		t.Errorf("leadership ended with %v, want ErrStopping", old.lastCause())
	}
	if keys := electionKeys(t, raw, old.id); len(keys) != 0 {
		t.Fatalf("%s's key is still there after Run returned: %+v", old.id, keys[0])
	}
	if l := old.master(); l != (election.Leader{}) {
		t.Errorf("Master of a stopped Election = %+v, want none", l)
	}
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n *node) bool { return n == old })
	next := agreed(t, time.Second, rest...)
	t.Logf("%s took over from %s after %s", next.id, old.id, time.Since(start))
	if next.term.Load() <= oldTerm {
		t.Fatalf("new term %d is not above the old one %d", next.term.Load(), oldTerm)
	}
	for _, n := range rest {
		n.stop()
	}
	if m := lt.maxActive(); m != 1 {
		t.Fatalf("%d lead callbacks ran at once, want 1", m)
	}
}

// A leader whose session lease is revoked, or whose key is deleted, stops
// leading at once, another node takes over, and the old leader queues again
// without a restart.
func TestLeadershipLost(t *testing.T) {
	tests := []struct {
		name  string
		cause error
		take  func(t *testing.T, raw *clientv3.Client, k *kv)
	}{
		{"lease revoked", election.ErrSessionLost, func(t *testing.T, raw *clientv3.Client, k *kv) {
			if _, err := raw.Revoke(t.Context(), k.lease); err != nil {
				t.Fatal(err)
			}
		}},
		{"key deleted", election.ErrKeyDeleted, func(t *testing.T, raw *clientv3.Client, k *kv) {
			if _, err := raw.Delete(t.Context(), k.key); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t, embedetcd.Config{})
			raw := newClient(t, srv.Endpoint())
			lt := &leadTracker{}
			nodes := []*node{
				startNode(t, newClient(t, srv.Endpoint()), "a", lt),
				startNode(t, newClient(t, srv.Endpoint()), "b", lt),
			}
			old := agreed(t, 5*time.Second, nodes...)
			oldTerm := old.term.Load()
			keys := electionKeys(t, raw, old.id)
			if len(keys) != 1 {
				t.Fatalf("%s has %d keys, want 1", old.id, len(keys))
			}

			tt.take(t, raw, keys[0])
			testutil.Eventually(t, time.Second, "the old leader's leadership context ends", func() bool {
				return old.term.Load() == 0
			})
			// Revoking the lease deletes the key too; whichever is seen first ends it.
			if c := old.lastCause(); !errors.Is(c, tt.cause) && !errors.Is(c, election.ErrKeyDeleted) {
				t.Errorf("leadership ended with %v, want %v", c, tt.cause)
			}
			if old.validAtEnd() {
				t.Error("Valid() still true once the leadership's context ended")
			}
			next := agreed(t, 2*time.Second, nodes...)
			if next == old || next.term.Load() <= oldTerm {
				t.Fatalf("%s leads with term %d after %s lost term %d", next.id, next.term.Load(), old.id, oldTerm)
			}
			testutil.Eventually(t, 5*time.Second, "the old leader campaigns again", func() bool {
				ks := electionKeys(t, raw, old.id)
				return len(ks) == 1 && ks[0].createRev > next.term.Load()
			})
			if !old.running() {
				t.Fatal("the old leader's Run returned")
			}
			if tt.cause == election.ErrSessionLost {
				if k := electionKeys(t, raw, old.id)[0]; k.lease == keys[0].lease {
					t.Fatalf("the old leader campaigns with its revoked lease %x", k.lease)
				}
			}
		})
	}
}

// A candidate whose session is lost while it waits in the queue notices it
// (Campaign alone would not) and queues again with a new session; the
// leader is not disturbed.
func TestFollowerSessionLost(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
	}
	leader := agreed(t, 5*time.Second, nodes...)
	term := leader.term.Load()
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	var keys []*kv
	testutil.Eventually(t, 5*time.Second, "the follower is in the queue", func() bool {
		keys = electionKeys(t, raw, follower.id)
		return len(keys) == 1
	})
	if _, err := raw.Revoke(t.Context(), keys[0].lease); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, testTTL, "the follower queues again with a new lease", func() bool {
		ks := electionKeys(t, raw, follower.id)
		return len(ks) == 1 && ks[0].lease != keys[0].lease
	})
	if leader.term.Load() != term || len(leader.leadTerms()) != 1 || len(follower.leadTerms()) != 0 {
		t.Fatalf("leadership moved: %s leads %d (terms %v), %s led %v", leader.id, leader.term.Load(), leader.leadTerms(), follower.id, follower.leadTerms())
	}
}

// A lead callback that returns on its own makes Run resign and campaign
// again; alone, the node wins again, with a new key and a new term.
func TestLeadReturnsEarly(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	n := startNode(t, newClient(t, srv.Endpoint()), "a", &leadTracker{})
	testutil.Eventually(t, 5*time.Second, "a leads", func() bool { return n.term.Load() != 0 })
	first := n.term.Load()

	n.stepDown <- struct{}{}
	testutil.Eventually(t, 5*time.Second, "a leads again", func() bool {
		return len(n.leadTerms()) == 2 && n.term.Load() != 0
	})
	second := n.term.Load()
	if second <= first {
		t.Fatalf("second term %d is not above the first %d", second, first)
	}
	keys := electionKeys(t, raw, "")
	if len(keys) != 1 || keys[0].createRev != second {
		t.Fatalf("keys = %+v, want only the new key, created at %d", keys, second)
	}
	testutil.Eventually(t, time.Second, "Master follows the new term", func() bool {
		return n.master() == election.Leader{ID: "a", Term: second}
	})
}

// Master is Leader{} with no candidate, notifies exactly on changes of the
// master, and agrees with CurrentLeader.
func TestMaster(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	cur := func() election.Leader {
		t.Helper()
		l, err := election.CurrentLeader(t.Context(), raw, testPrefix)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := cur(); l != (election.Leader{}) {
		t.Fatalf("CurrentLeader with no candidate = %+v", l)
	}

	lt := &leadTracker{}
	a := startNode(t, newClient(t, srv.Endpoint()), "a", lt)
	// Record every value Master announces on a.
	seen := make(chan election.Leader, 100)
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			l, changed := a.el.Leader()
			seen <- l
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	la := agreed(t, 5*time.Second, a)
	if l := cur(); l != la.master() {
		t.Fatalf("CurrentLeader = %+v, Master = %+v", l, la.master())
	}

	// Changes under the prefix that leave the master alone: another
	// candidate and a few foreign keys.
	b := startNode(t, newClient(t, srv.Endpoint()), "b", lt)
	testutil.Eventually(t, 5*time.Second, "b campaigns", func() bool { return len(electionKeys(t, raw, "b")) == 1 })
	for _, k := range []string{"x1", "x2", "x3"} {
		if _, err := raw.Put(t.Context(), keyspace.Election(testPrefix)+"/"+k, "foreign"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "b knows the master", func() bool { return b.master() == la.master() })
	testutil.Eventually(t, 5*time.Second, "five keys", func() bool { return len(electionKeys(t, raw, "")) == 5 })

	// Then a change of master, seen after the others (a's mirror is ordered).
	if _, err := raw.Delete(t.Context(), electionKeys(t, raw, "a")[0].key); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "b leads", func() bool { return b.term.Load() != 0 })
	if lb := agreed(t, 2*time.Second, a, b); lb != b {
		t.Fatalf("%s leads, want b", lb.id)
	}
	if l := cur(); l != b.master() {
		t.Fatalf("CurrentLeader = %+v, Master = %+v", l, b.master())
	}
	cancel()
	<-watched
	close(seen)
	var got []election.Leader
	for l := range seen {
		got = append(got, l)
	}
	want := []election.Leader{{}, a.master(), b.master()}
	want[1] = election.Leader{ID: "a", Term: la.leadTerms()[0]}
	if !slices.Equal(got, want) {
		t.Fatalf("Master announced %+v, want %+v", got, want)
	}

	a.stop()
	b.stop()
	if _, err := raw.Delete(t.Context(), keyspace.Election(testPrefix)+"/x", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if l := cur(); l != (election.Leader{}) {
		t.Fatalf("CurrentLeader with no candidate left = %+v", l)
	}
	if l := a.master(); l != (election.Leader{}) {
		t.Fatalf("Master of a stopped Election = %+v", l)
	}
}

// etcd goes away for longer than the TTL and comes back: Run keeps going,
// retries at a bounded rate, stops in bounded time if asked to, and a leader
// is elected again.
func TestEtcdRestart(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
		startNode(t, newClient(t, srv.Endpoint()), "c", lt),
	}
	old := agreed(t, 5*time.Second, nodes...)
	oldTerm := old.term.Load()

	// With clients connected, Close drains for etcd's request timeout
	// (about 7s) and keeps serving the open streams meanwhile.
	start := time.Now()
	srv.Stop()
	t.Logf("etcd stopped in %s", time.Since(start))
	testutil.Eventually(t, testTTL+3*time.Second, "the leadership ends with the session", func() bool {
		return old.term.Load() == 0
	})
	// The leader steps down before its lease can expire on the server
	// (ErrLeaseExpiring); the session's own loss is the later signal.
	if c := old.lastCause(); !errors.Is(c, election.ErrLeaseExpiring) && !errors.Is(c, election.ErrSessionLost) {
		t.Errorf("leadership ended with %v, want ErrLeaseExpiring or ErrSessionLost", c)
	}

	// A candidate stopped while etcd is down still returns in bounded time
	// (concurrency's Campaign, cancelled, resigns without a deadline).
	quit := nodes[0]
	if quit == old {
		quit = nodes[1]
	}
	start = time.Now()
	quit.stop()
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Run took %s to stop with etcd down", d)
	}
	t.Logf("%s stopped in %s with etcd down", quit.id, time.Since(start))
	nodes = slices.DeleteFunc(nodes, func(n *node) bool { return n == quit })

	testutil.Eventually(t, 5*time.Second, "the old leader reports etcd unreachable", func() bool {
		return old.logs.count("etcd unreachable, retrying") > 0
	})
	attempts := func() int {
		sum := 0
		for _, n := range nodes {
			sum += n.logs.count("etcd unreachable, retrying") + n.logs.count("campaigning") + n.logs.count("campaign failed, retrying")
		}
		return sum
	}
	if a := attempts(); a > 30 {
		t.Fatalf("%d attempts while etcd was down: spinning", a)
	}
	for _, n := range nodes {
		if !n.running() {
			t.Fatalf("%s: Run returned while etcd was down", n.id)
		}
	}

	srv.Restart()
	start = time.Now()
	next := agreed(t, 10*time.Second, nodes...)
	t.Logf("%s leads %s after the restart", next.id, time.Since(start))
	if next.term.Load() <= oldTerm {
		t.Fatalf("term %d after the restart is not above %d", next.term.Load(), oldTerm)
	}
	if a := attempts(); a > 40 {
		t.Fatalf("%d attempts in all: spinning", a)
	}
	for _, n := range nodes {
		n.stop()
	}
	if m := lt.maxActive(); m != 1 {
		t.Fatalf("%d lead callbacks ran at once, want 1", m)
	}
}

// etcd is replaced by an empty one on the same endpoint (data wiped): every
// node's Master forgets the old keys, one node is elected once, and it keeps
// the leadership.
func TestEtcdReplacedByAnEmptyOne(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	// A cluster that has run a while: revisions and terms are well above
	// what the empty etcd reaches soon.
	for i := range 100 {
		if _, err := raw.Put(t.Context(), "/other/key", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
		startNode(t, newClient(t, srv.Endpoint()), "c", lt),
	}
	old := agreed(t, 5*time.Second, nodes...)
	testutil.Eventually(t, 5*time.Second, "three keys in the queue", func() bool {
		return len(electionKeys(t, raw, "")) == 3
	})
	before := 0
	for _, n := range nodes {
		before += len(n.leadTerms())
	}

	oldTerm := old.term.Load()
	srv.Replace()
	testutil.Eventually(t, 5*testTTL, "the old leadership ends", func() bool { return old.term.Load() != oldTerm })
	next := agreed(t, 10*testTTL, nodes...)
	t.Logf("%s leads term %d after the replacement (%s led term %d before)", next.id, next.term.Load(), old.id, oldTerm)
	keys := electionKeys(t, raw, "")
	if len(keys) == 0 || keys[0].id != next.id || keys[0].createRev != next.term.Load() {
		t.Fatalf("%d keys in the new etcd, want %s's at %d the oldest", len(keys), next.id, next.term.Load())
	}
	// Stay a few TTLs: the leadership holds, and nobody else is promoted.
	testutil.Consistently(t, 3*testTTL, "the leadership stays after the replacement", func() bool {
		return soleLeader(nodes...) == next
	})
	promotions := -before
	for _, n := range nodes {
		promotions += len(n.leadTerms())
	}
	if promotions >= 5 {
		t.Fatalf("%d promotions after the replacement, want a few", promotions)
	}
	// No check of lt.maxActive: the old master learns that its lease is
	// gone only at its next keep-alive, and a node may win on the new etcd
	// before that. Its fenced writes fail there (another key).
	for _, n := range nodes {
		n.stop()
	}
}

// An election key without a lease, older than every candidate (put by
// hand), would make a master that never answers, for ever: the candidates
// delete it, with a warning, and elect one of them.
func TestLeaselessKeyIsDeleted(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	phantom := keyspace.Election(testPrefix) + "/x"
	if _, err := raw.Put(t.Context(), phantom, "y"); err != nil {
		t.Fatal(err)
	}
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
	}
	leader := agreed(t, 5*time.Second, nodes...)
	if keys := electionKeys(t, raw, "y"); len(keys) != 0 {
		t.Fatalf("the key without a lease is still there: %+v", *keys[0])
	}
	deleted := 0
	for _, n := range nodes {
		deleted += n.logs.count("deleted an election key without a lease: it was older than every candidate and blocked the election")
		if p := n.el.Phantom(); p != "" {
			t.Errorf("%s: Phantom() = %q with %s leading", n.id, p, leader.id)
		}
	}
	if deleted != 1 {
		t.Fatalf("%d warnings about the deleted key, want 1", deleted)
	}
}

// A key with a live lease that is not a candidate's (another program's,
// not named after its lease) is the master by etcd's rule: it is reported
// by Phantom, not deleted, and once its lease ends a candidate leads.
func TestForeignLeasedKeyIsReported(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	lease, err := raw.Grant(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	foreign := keyspace.Election(testPrefix) + "/intruder"
	if _, err := raw.Put(t.Context(), foreign, "y", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	lt := &leadTracker{}
	nodes := []*node{
		startNode(t, newClient(t, srv.Endpoint()), "a", lt),
		startNode(t, newClient(t, srv.Endpoint()), "b", lt),
	}
	testutil.Eventually(t, 5*time.Second, "every node reports the foreign master", func() bool {
		for _, n := range nodes {
			if n.master().ID != "y" || !strings.Contains(n.el.Phantom(), "is not a candidate's") {
				return false
			}
		}
		return true
	})
	testutil.Eventually(t, 5*time.Second, "both candidates queue", func() bool { return len(electionKeys(t, raw, "")) == 3 })
	if l := soleLeader(nodes...); l != nil || lt.maxActive() != 0 {
		t.Fatalf("a candidate leads behind an older live key")
	}
	if keys := electionKeys(t, raw, "y"); len(keys) != 1 {
		t.Fatal("the foreign key with a live lease was deleted")
	}

	if _, err := raw.Revoke(t.Context(), lease.ID); err != nil {
		t.Fatal(err)
	}
	agreed(t, 5*time.Second, nodes...)
	for _, n := range nodes {
		if p := n.el.Phantom(); p != "" {
			t.Errorf("%s: Phantom() = %q after the foreign key went", n.id, p)
		}
	}
}
