package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/registry"
)

// putRecord writes rec under the cluster's prefix by hand, without a lease.
func (c *cluster) putRecord(rec registry.Record) {
	c.t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.cli.Put(c.t.Context(), keyspace.Node(c.cfg.Prefix, rec.ID), string(b)); err != nil {
		c.t.Fatal(err)
	}
}

// allReady checks that every running node answers /readyz with 200.
func (c *cluster) allReady() {
	c.t.Helper()
	for _, n := range c.running() {
		if code, body := httpGet(c.t, n, "/readyz"); code != http.StatusOK {
			c.t.Errorf("%s /readyz: %d %q, want 200", n.ID(), code, body)
		}
	}
}

// One record whose cluster_url does not parse is skipped and counted by
// every node; it blocks neither the routes nor a node that joins later.
func TestBadNodeRecordBlocksNoOne(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) { cfg.TaskInterval = 0 })
	c.startN(2)
	c.putRecord(registry.Record{
		ID: "bad-00000009", Name: "bad", IP: "127.0.0.9", ClientURL: "nats://127.0.0.9:4222",
		ClusterURL: "nats-route://127.0.0.9:port", HTTPURL: "http://127.0.0.9:8222", Version: "test",
		Started: time.Now().UTC(),
	})
	for _, n := range c.running() {
		testutil.Eventually(t, 5*time.Second, n.ID()+" counts the bad record", func() bool {
			return n.Status().SkippedRecords == 1
		})
	}
	c.allReady()
	late := c.start()
	c.waitConverged(15 * time.Second)
	c.allReady()
	metrics, _ := scrape(t, late)
	if got := metrics["meshpool_node_records_skipped_total"]; got != 1 {
		t.Errorf("meshpool_node_records_skipped_total on the late node = %v, want 1", got)
	}
}

// A node of another cluster name refuses to start, and takes no part in the
// election; a record of another cluster name that slips in is left out.
func TestNodeOfAnotherClusterNameRefusesToStart(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) { cfg.TaskInterval = 0 })
	a := c.start()
	if m := c.waitConverged(15 * time.Second); m != a {
		t.Fatalf("master %v, want %s", m, a.ID())
	}
	// Everything written under the prefix from now on.
	from := c.etcdRevision()
	events := c.cli.Watch(t.Context(), c.cfg.Prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(from+1))

	cfg := c.cfg
	cfg.Advertise, cfg.Name, cfg.ClusterName = "127.0.0.50", "other", "other"
	b, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = b.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("B's Run = %v (context: %v), want an error at once", err, ctx.Err())
	}
	for _, want := range []string{`"other"`, `"meshpool"`, a.ID(), "--cluster-name meshpool", "--prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}

	// B wrote nothing: no record, no election key.
	sentinel := c.cfg.Prefix + "/test-sentinel"
	if _, err := c.cli.Put(t.Context(), sentinel, "x"); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case resp := <-events:
			if err := resp.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range resp.Events {
				if string(ev.Kv.Key) == sentinel {
					done = true
				}
				if strings.Contains(string(ev.Kv.Key), b.ID()) || strings.Contains(string(ev.Kv.Value), b.ID()) {
					t.Errorf("B wrote to etcd: %s %s = %.200s", ev.Type, ev.Kv.Key, ev.Kv.Value)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the sentinel put never came back through the watch")
		}
	}

	// A record of another cluster name that slips in (two nodes starting
	// at once) is left out and counted.
	c.putRecord(registry.Record{
		ID: "other-00000013", Name: "other", IP: "127.0.0.51", ClientURL: "nats://127.0.0.51:4222",
		ClusterURL: "nats-route://127.0.0.51:6222", HTTPURL: "http://127.0.0.51:8222", Version: "test",
		Started: time.Now().UTC(), Cluster: "other",
	})
	testutil.Eventually(t, 5*time.Second, "A counts the record of the other cluster", func() bool {
		return a.Status().SkippedRecords == 1
	})
	s := a.Status()
	if !s.IsMaster || s.Master.ID != a.ID() || len(s.Members) != 1 {
		t.Errorf("A: master %s (is master %t), members %v; want A alone, master", s.Master.ID, s.IsMaster, s.Members)
	}
	c.allReady()
}

// etcdRevision is etcd's current revision.
func (c *cluster) etcdRevision() int64 {
	c.t.Helper()
	resp, err := c.cli.Get(c.t.Context(), "/", clientv3.WithCountOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.Header.Revision
}
