package registry_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
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

// runRegistry runs a Registry for rec that logs as text into the returned
// testutil.Buffer, until the test ends.
func runRegistry(t *testing.T, cli *clientv3.Client, rec registry.Record) (*registry.Registry, *testutil.Buffer) {
	t.Helper()
	out := &testutil.Buffer{}
	reg, err := registry.New(cli, rec, registry.Config{Prefix: prefix, TTL: testTTL, Logger: slog.New(slog.NewTextHandler(out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", out.String())
		}
	})
	testutil.Go(t, reg.Run)
	testutil.Eventually(t, 5*time.Second, rec.ID+" registered", func() bool {
		m, _ := reg.Membership()
		_, ok := m.Lookup(rec.ID)
		return ok && reg.Registered()
	})
	return reg, out
}

func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := cli.Put(t.Context(), key, value); err != nil {
		t.Fatal(err)
	}
}

func putRecord(t *testing.T, cli *clientv3.Client, rec registry.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	put(t, cli, keyspace.Node(prefix, rec.ID), string(b))
}

// A 100 KB bad record is logged in one short line, once per version of it,
// and counted.
func TestBadRecordIsLoggedShortAndOnce(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	reg, out := runRegistry(t, cli, testRecord("self-00000010", "10.0.0.1"))

	huge := keyspace.Node(prefix, "huge")
	put(t, cli, huge, `{"id":"`+strings.Repeat("a", 100_000)+`"}`)
	testutil.Eventually(t, 5*time.Second, "the bad record logged", func() bool {
		return len(out.Lines("skipping bad node record", "key="+huge)) == 1
	})
	line := out.Lines("skipping bad node record")[0]
	if len(line) > 1000 {
		t.Errorf("the warning is %d bytes long, want at most 1000: %.300s…", len(line), line)
	}
	if !strings.Contains(line, "size=100009") {
		t.Errorf("the warning does not give the record's size: %.300s", line)
	}

	// Another snapshot does not log it again; a new version of it does.
	putRecord(t, cli, testRecord("other-00000010", "10.0.0.2"))
	testutil.Eventually(t, 5*time.Second, "the other record seen", func() bool {
		m, _ := reg.Membership()
		_, ok := m.Lookup("other-00000010")
		return ok
	})
	if n := len(out.Lines("skipping bad node record")); n != 1 {
		t.Errorf("the bad record logged %d times after another change, want once", n)
	}
	put(t, cli, huge, `{"id":"`+strings.Repeat("b", 100_000)+`"}`)
	testutil.Eventually(t, 5*time.Second, "the new version logged", func() bool {
		return len(out.Lines("skipping bad node record", "key="+huge)) == 2
	})
	if got := reg.SkippedRecords(); got != 2 {
		t.Errorf("SkippedRecords() = %d, want 2 (two versions)", got)
	}
	for _, l := range out.Lines() {
		if len(l) > 1000 {
			t.Errorf("a log line is %d bytes long: %.300s…", len(l), l)
		}
	}
}

// A record whose cluster_url does not parse is left out; the other members
// are still published.
func TestRecordWithBadClusterURLIsSkipped(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	bad := testRecord("bad-00000011", "10.0.0.9")
	bad.ClusterURL = "nats-route://10.0.0.9:port"
	putRecord(t, cli, bad)
	reg, out := runRegistry(t, cli, testRecord("self-00000011", "10.0.0.1"))
	putRecord(t, cli, testRecord("good-00000011", "10.0.0.2"))
	testutil.Eventually(t, 5*time.Second, "the good record seen", func() bool {
		m, _ := reg.Membership()
		return slices.Equal(m.IDs(), []string{"good-00000011", "self-00000011"})
	})
	if len(out.Lines("skipping bad node record", "cluster_url")) != 1 {
		t.Error("the bad cluster_url is not logged")
	}
	if got := reg.SkippedRecords(); got != 1 {
		t.Errorf("SkippedRecords() = %d, want 1", got)
	}
}

// Many bad records at once give a bounded number of lines.
func TestManyBadRecordsAreSummedUp(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	for i := range 25 {
		put(t, cli, keyspace.Node(prefix, fmt.Sprintf("bad-%02d", i)), "{not json")
	}
	reg, out := runRegistry(t, cli, testRecord("self-00000012", "10.0.0.1"))
	testutil.Eventually(t, 5*time.Second, "the summary logged", func() bool {
		return len(out.Lines("skipping more bad node records", "count=15")) == 1
	})
	if n := len(out.Lines("skipping bad node record")); n != 10 {
		t.Errorf("%d bad records logged one by one, want 10", n)
	}
	if got := reg.SkippedRecords(); got != 25 {
		t.Errorf("SkippedRecords() = %d, want 25", got)
	}
}

// A record of another cluster name is left out and reported; one without a
// cluster name (an older version) is kept.
func TestRecordOfAnotherClusterIsSkipped(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	self := testRecord("self-00000013", "10.0.0.1")
	self.Cluster = "meshpool"
	reg, out := runRegistry(t, cli, self)

	same := testRecord("same-00000013", "10.0.0.2")
	same.Cluster = "meshpool"
	older := testRecord("older-00000013", "10.0.0.3")
	other := testRecord("other-00000013", "10.0.0.4")
	other.Cluster = "other"
	for _, r := range []registry.Record{other, same, older} {
		putRecord(t, cli, r)
	}
	testutil.Eventually(t, 5*time.Second, "same and older seen", func() bool {
		m, _ := reg.Membership()
		return slices.Equal(m.IDs(), []string{"older-00000013", "same-00000013", "self-00000013"})
	})
	if len(out.Lines("skipping node record of another cluster", "other-00000013", `\"other\"`)) != 1 {
		t.Error("the record of another cluster is not reported once")
	}
	if got := reg.SkippedRecords(); got != 1 {
		t.Errorf("SkippedRecords() = %d, want 1", got)
	}
	// List, as `meshpool status` uses it, shows every cluster.
	m, err := registry.List(t.Context(), cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.IDs(), "other-00000013") {
		t.Errorf("List = %v, want the record of the other cluster too", m.IDs())
	}
}
