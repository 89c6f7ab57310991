package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/registry"
)

const (
	prefix  = "/mp"
	testTTL = 2 * time.Second
)

func hexLease(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }

// registered waits until n's key is in etcd under a lease, n reports
// Registered and its membership lists it; it returns the lease.
func registered(t *testing.T, cli *clientv3.Client, n *node, id string) clientv3.LeaseID {
	t.Helper()
	var lease clientv3.LeaseID
	testutil.Eventually(t, 5*time.Second, id+" registered", func() bool {
		lease = leaseOf(t, cli, keyspace.Node(prefix, id))
		return lease != 0 && n.Registered() && slices.Contains(n.ids(), id)
	})
	return lease
}

func TestRegistersUnderKeptAliveLease(t *testing.T) {
	t.Parallel() // mostly waiting for time to pass
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	rec := testRecord("self-00000001", "10.1.2.3")
	n := startNode(t, cli, rec, prefix, testTTL)
	lease := registered(t, cli, n, rec.ID)

	resp := getKV(t, cli, keyspace.Node(prefix, rec.ID))
	got, err := registry.DecodeRecord(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(rec); string(resp.Kvs[0].Value) != string(want) {
		t.Errorf("stored %s, want %s", resp.Kvs[0].Value, want)
	}
	if got.ID != rec.ID || !got.Started.Equal(rec.Started) {
		t.Errorf("stored record %+v, want %+v", got, rec)
	}
	ttl, err := cli.TimeToLive(t.Context(), lease, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 2 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != keyspace.Node(prefix, rec.ID) {
		t.Errorf("lease %s: granted TTL %d, keys %q; want 2s and our key", hexLease(lease), ttl.GrantedTTL, ttl.Keys)
	}
	if !n.logs.has("registered", "id", rec.ID, "ip", rec.IP, "lease", hexLease(lease)) {
		t.Errorf("no \"registered\" log with id, ip and lease %s", hexLease(lease))
	}

	// Without keep-alive the lease would expire after 2s and the key would
	// go (and come back under another lease).
	testutil.Consistently(t, testTTL+time.Second, "key stays under the first lease", func() bool {
		return leaseOf(t, cli, keyspace.Node(prefix, rec.ID)) == lease && n.Registered()
	})
}

func TestRegistersAgainAfterLeaseRevoked(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	rec := testRecord("self-00000002", "10.1.2.3")
	n := startNode(t, cli, rec, prefix, testTTL)
	old := registered(t, cli, n, rec.ID)

	if _, err := cli.Revoke(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	var lease clientv3.LeaseID
	testutil.Eventually(t, 2*time.Second, "key back under a new lease", func() bool {
		lease = leaseOf(t, cli, keyspace.Node(prefix, rec.ID))
		return lease != 0 && lease != old && n.Registered()
	})
	if !n.logs.has("lease lost, registering again") {
		t.Error(`no "lease lost, registering again" log`)
	}
	testutil.Eventually(t, time.Second, "registered log with the new lease", func() bool {
		return n.logs.has("registered", "id", rec.ID, "lease", hexLease(lease))
	})
	testutil.Eventually(t, time.Second, "membership lists self again", func() bool {
		return slices.Equal(n.ids(), []string{rec.ID})
	})
}

func TestRegistersAgainAfterKeyDeleted(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	rec := testRecord("self-00000003", "10.1.2.3")
	n := startNode(t, cli, rec, prefix, testTTL)
	lease := registered(t, cli, n, rec.ID)

	del, err := cli.Delete(t.Context(), keyspace.Node(prefix, rec.ID))
	if err != nil || del.Deleted != 1 {
		t.Fatalf("delete: %v, %+v", err, del)
	}
	// The lease is still alive, so the key comes back on it.
	testutil.Eventually(t, 2*time.Second, "key back on the same lease", func() bool {
		resp := getKV(t, cli, keyspace.Node(prefix, rec.ID))
		return resp != nil && len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision > del.Header.Revision &&
			clientv3.LeaseID(resp.Kvs[0].Lease) == lease && n.Registered()
	})
	if !n.logs.has("lease lost, registering again", "reason", "key deleted or overwritten") {
		t.Error(`no "lease lost, registering again" log for the deleted key`)
	}
	testutil.Eventually(t, time.Second, "membership lists self again", func() bool {
		return slices.Equal(n.ids(), []string{rec.ID})
	})
}

func TestRegistersAgainAfterEtcdReplaced(t *testing.T) {
	t.Parallel() // mostly waiting for time to pass
	srv, cli := etcdtest.New(t)

	// A record nobody keeps alive, and enough writes that etcd A's revision
	// is well ahead of what a fresh etcd will reach in this test.
	ghost, _ := json.Marshal(testRecord("ghost", "10.9.9.9"))
	if _, err := cli.Put(t.Context(), keyspace.Node(prefix, "ghost"), string(ghost)); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := cli.Put(t.Context(), "/filler", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	rec := testRecord("self-00000004", "10.1.2.3")
	n := startNode(t, cli, rec, prefix, testTTL)
	registered(t, cli, n, rec.ID)
	testutil.Eventually(t, 2*time.Second, "membership has ghost and self", func() bool {
		return slices.Equal(n.ids(), []string{"ghost", rec.ID})
	})
	before, _ := n.Membership()

	// etcd goes away and a new, empty one takes its address: the lease is
	// gone and revisions start again at 1. (Closing an embedded etcd with
	// open watch streams takes its request timeout, about 7s.)
	srv.Replace()
	var lease clientv3.LeaseID
	testutil.Eventually(t, 10*time.Second, "registered in the new etcd", func() bool {
		lease = leaseOf(t, cli, keyspace.Node(prefix, rec.ID))
		return lease != 0 && n.Registered()
	})
	if !n.logs.has("lease lost, registering again") {
		t.Error(`no "lease lost, registering again" log`)
	}
	// Only a fresh read (Resync) shows that the ghost is gone: the old watch
	// waits for revisions the new etcd has not reached.
	testutil.Eventually(t, 2*time.Second, "membership is read again from the new etcd", func() bool {
		return slices.Equal(n.ids(), []string{rec.ID})
	})
	if after, _ := n.Membership(); after.Revision >= before.Revision {
		t.Errorf("membership revision %d, want below %d (the new etcd's)", after.Revision, before.Revision)
	}

	// A clean stop revokes the new lease in the new etcd.
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if leaseOf(t, cli, keyspace.Node(prefix, rec.ID)) != 0 {
		t.Error("key still there after a clean stop")
	}
	if n.logs.has("cannot revoke lease, the record stays until the ttl ends") {
		t.Error("revoke failed")
	}
	// Close the client before the new etcd (cleanups run the other way
	// round): its lease stream outlives every keep-alive and would hold the
	// server's graceful stop for its whole timeout.
	_ = cli.Close()
}

func TestCleanStopRevokesLease(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	ttl := 10 * time.Second
	a := startNode(t, cli, testRecord("a-00000005", "10.0.0.1"), prefix, ttl)
	b := startNode(t, cli, testRecord("b-00000005", "10.0.0.2"), prefix, ttl)
	registered(t, cli, a, "a-00000005")
	registered(t, cli, b, "b-00000005")
	testutil.Eventually(t, 2*time.Second, "b sees a", func() bool {
		return slices.Equal(b.ids(), []string{"a-00000005", "b-00000005"})
	})
	_, changed := b.Membership()

	stopped := time.Now()
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	// Well under the 10s TTL: only a revoked lease does this.
	testutil.Eventually(t, time.Second-time.Since(stopped), "b sees a leave", func() bool {
		return slices.Equal(b.ids(), []string{"b-00000005"})
	})
	select {
	case <-changed:
	default:
		t.Error("membership changed but the channel was not closed")
	}
	if leaseOf(t, cli, keyspace.Node(prefix, "a-00000005")) != 0 {
		t.Error("a's key is still in etcd")
	}
	if a.Registered() {
		t.Error("a still reports Registered after Run returned")
	}
	if !a.logs.has("unregistered", "id", "a-00000005") {
		t.Error(`no "unregistered" log`)
	}
	testutil.Eventually(t, time.Second, "b logs a's departure", func() bool {
		return b.logs.has("node removed", "id", "a-00000005", "ip", "10.0.0.1")
	})
}

func TestMembershipIsSortedAndLogsOthers(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	self := startNode(t, cli, testRecord("b-00000006", "10.0.0.2"), prefix, testTTL)
	registered(t, cli, self, "b-00000006")
	c := startNode(t, cli, testRecord("c-00000006", "10.0.0.3"), prefix, testTTL)
	a := startNode(t, cli, testRecord("a-00000006", "10.0.0.1"), prefix, testTTL)
	registered(t, cli, c, "c-00000006")
	registered(t, cli, a, "a-00000006")

	want := []string{"a-00000006", "b-00000006", "c-00000006"}
	testutil.Eventually(t, 2*time.Second, "self sees all three, sorted", func() bool {
		return slices.Equal(self.ids(), want)
	})
	m, _ := self.Membership()
	others := registry.Membership{Members: m.Others("b-00000006")}.IDs()
	if !slices.Equal(others, []string{"a-00000006", "c-00000006"}) {
		t.Errorf("Others = %v", others)
	}
	if r, ok := m.Lookup("c-00000006"); !ok || r.IP != "10.0.0.3" || r.HTTPURL != "http://10.0.0.3:8222" {
		t.Errorf("Lookup(c) = %+v, %t", r, ok)
	}
	// The snapshot is the caller's: changing it does not change the registry's.
	m.Members[0].ID = "scribbled"
	if again, _ := self.Membership(); again.Members[0].ID != "a-00000006" {
		t.Error("Membership returned a slice shared with the registry")
	}

	for _, o := range []struct{ id, ip string }{{"a-00000006", "10.0.0.1"}, {"c-00000006", "10.0.0.3"}} {
		if n := self.logs.count("node added", "id", o.id, "ip", o.ip); n != 1 {
			t.Errorf("%d \"node added\" logs for %s, want 1", n, o.id)
		}
	}
	if self.logs.has("node added", "id", "b-00000006") {
		t.Error(`"node added" logged for self`)
	}

	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "c removed", func() bool {
		return self.logs.has("node removed", "id", "c-00000006", "ip", "10.0.0.3")
	})
	if ids := self.ids(); !slices.Equal(ids, []string{"a-00000006", "b-00000006"}) {
		t.Errorf("after c left: %v", ids)
	}
}

func TestMembershipSkipsDuplicatesAndBadRecords(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	rec := testRecord("self-00000007", "10.1.2.3")
	n := startNode(t, cli, rec, prefix, testTTL)
	registered(t, cli, n, rec.ID)
	m0, changed := n.Membership()

	// Keep-alives (every TTL/3, so at least one in a second) change nothing.
	testutil.Consistently(t, time.Second, "no change while only keep-alives happen", func() bool {
		select {
		case <-changed:
			return false
		default:
			return true
		}
	})

	// Identical bytes put again, then a record that does not decode. Once the
	// warning for the latter is logged, the mirror has seen both.
	resp := getKV(t, cli, keyspace.Node(prefix, rec.ID))
	kv := resp.Kvs[0]
	if _, err := cli.Put(t.Context(), string(kv.Key), string(kv.Value), clientv3.WithIgnoreLease()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(t.Context(), keyspace.Node(prefix, "broken"), "{not json"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "bad record logged", func() bool {
		return n.logs.has("skipping bad node record", "key", keyspace.Node(prefix, "broken"))
	})
	select {
	case <-changed:
		m, _ := n.Membership()
		t.Fatalf("membership published again without a change: %+v -> %+v", m0, m)
	default:
	}

	// A real change is published, with the revision of the write.
	other, _ := json.Marshal(testRecord("other", "10.0.0.9"))
	put, err := cli.Put(t.Context(), keyspace.Node(prefix, "other"), string(other))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(2 * time.Second):
		t.Fatal("membership change not published")
	}
	m1, _ := n.Membership()
	if !slices.Equal(m1.IDs(), []string{"other", rec.ID}) || m1.Revision != put.Header.Revision {
		t.Errorf("membership %v at %d, want [other %s] at %d", m1.IDs(), m1.Revision, rec.ID, put.Header.Revision)
	}
	if c := n.logs.count("skipping bad node record"); c != 1 {
		t.Errorf("bad record logged %d times, want once per version", c)
	}
	if !n.Registered() {
		t.Error("identical re-put made the registry think it lost its key")
	}
}

func TestRetriesWhileEtcdIsDown(t *testing.T) {
	t.Parallel() // mostly waiting for time to pass
	// Nobody listens on this address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cli := newClient(t, addr)
	n := startNode(t, cli, testRecord("lonely-00000008", "10.0.0.1"), prefix, testTTL)

	testutil.Eventually(t, 3*testTTL, "two failed attempts logged", func() bool {
		return n.logs.count("etcd unreachable, retrying") >= 2
	})
	tries := n.logs.find("etcd unreachable, retrying")
	first, _ := time.ParseDuration(tries[0].attrs["retry_in"])
	second, _ := time.ParseDuration(tries[1].attrs["retry_in"])
	if first <= 0 || second <= first {
		t.Errorf("retry_in %s then %s, want a growing back-off", first, second)
	}
	if n.Registered() {
		t.Error("Registered with etcd down")
	}
	stopped := time.Now()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(stopped); d > time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
}

func TestRunTwice(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	n := startNode(t, cli, testRecord("twice-00000009", "10.0.0.1"), prefix, testTTL)
	registered(t, cli, n, "twice-00000009")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Run(ctx); err == nil {
		t.Error("second Run returned nil")
	}
}

func TestNoGoroutineOutlivesRun(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	n := startNode(t, cli, testRecord("short-00000010", "10.0.0.1"), prefix, testTTL)
	registered(t, cli, n, "short-00000010")
	if len(ourGoroutines()) == 0 {
		t.Fatal("no goroutine of the registry found while it runs: the check below is blind")
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	// The client stays open, so a goroutine blocked on one of its channels
	// would still be there; the TestMain check runs only after it is closed.
	if g := ourGoroutines(); len(g) > 0 {
		t.Fatalf("goroutines left after Run returned:\n%s", strings.Join(g, "\n\n"))
	}
}

// ourGoroutines returns the stacks of goroutines running code of the
// registry or its mirror (not of the tests).
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "meshpool/registry.") || strings.Contains(g, "meshpool/internal/etcdwatch.") {
			ours = append(ours, g)
		}
	}
	return ours
}
