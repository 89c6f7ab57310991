package node_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
	"github.com/meshpool/meshpool/taskstore"
)

// TestValidateDurations checks every duration of Config against what etcd
// and the node accept: a value etcd would refuse later is refused at start.
func TestValidateDurations(t *testing.T) {
	const forever = time.Duration(1<<63 - 1)
	for _, tc := range []struct {
		name string
		set  func(*node.Config)
		want string // in the error; "" for valid
	}{
		{"defaults", func(*node.Config) {}, ""},
		{"ttl min", func(c *node.Config) { c.TTL = keyspace.MinTTL }, ""},
		{"ttl max", func(c *node.Config) { c.TTL = keyspace.MaxLeaseTTL }, ""},
		{"ttl too short", func(c *node.Config) { c.TTL = time.Second }, "ttl must be at least 2s"},
		{"ttl not whole", func(c *node.Config) { c.TTL = 2500 * time.Millisecond }, "whole seconds"},
		{"ttl above etcd's", func(c *node.Config) { c.TTL = keyspace.MaxLeaseTTL + time.Second }, "etcd's longest lease"},
		{"ttl forever", func(c *node.Config) { c.TTL = forever }, "etcd's longest lease"},
		{"retention 0", func(c *node.Config) { c.ResultRetention = 0 }, ""},
		{"retention max", func(c *node.Config) { c.ResultRetention = taskstore.MaxRetention }, ""},
		{"retention negative", func(c *node.Config) { c.ResultRetention = -time.Second }, "result retention -1s"},
		{"retention above etcd's", func(c *node.Config) { c.ResultRetention = keyspace.MaxLeaseTTL }, "etcd grants none longer than 2500000h0m0s"},
		{"retention just above max", func(c *node.Config) { c.ResultRetention = taskstore.MaxRetention + time.Nanosecond }, "result retention"},
		{"retention forever", func(c *node.Config) { c.ResultRetention = forever }, "result retention"},
		{"compaction off", func(c *node.Config) { c.CompactionRetention = 0 }, ""},
		{"compaction min", func(c *node.Config) { c.CompactionRetention = node.MinCompactionRetention }, ""},
		{"compaction too short", func(c *node.Config) { c.CompactionRetention = time.Second }, "compaction retention 1s: want 0 (off: etcd compacts) or at least 1m0s"},
		{"compaction negative", func(c *node.Config) { c.CompactionRetention = -time.Minute }, "compaction retention"},
		{"etcd max fill all", func(c *node.Config) { c.EtcdMaxFill = 1 }, ""},
		{"per submitter over max pending", func(c *node.Config) { c.MaxPending = 1000 }, "max pending per submitter 25000 is more than max pending 1000"},
		{"etcd max fill over 1", func(c *node.Config) { c.EtcdMaxFill = 1.5 }, "etcd max fill 1.5: want more than 0 and at most 1"},
		{"etcd max fill negative", func(c *node.Config) { c.EtcdMaxFill = -0.1 }, "etcd max fill"},
		{"etcd max fill NaN", func(c *node.Config) { c.EtcdMaxFill = math.NaN() }, "etcd max fill"},
		{"task interval negative", func(c *node.Config) { c.TaskInterval = -time.Second }, "task interval"},
		{"work time reversed", func(c *node.Config) { c.WorkTime = node.WorkTime{Min: 2 * time.Second, Max: time.Second} }, "work time"},
		{"ack timeout 0 is the default", func(c *node.Config) { c.AckTimeout = 0 }, ""},
		{"ack timeout negative", func(c *node.Config) { c.AckTimeout = -time.Second }, "ack timeout"},
		{"info interval negative", func(c *node.Config) { c.InfoInterval = -time.Second }, "info interval"},
		{"shutdown grace negative", func(c *node.Config) { c.ShutdownGrace = -time.Second }, "shutdown grace"},
		{"task timeout short", func(c *node.Config) { c.TaskTimeout = 500 * time.Millisecond }, "task timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := node.DefaultConfig()
			cfg.Advertise = "127.0.0.2"
			tc.set(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, node.ErrInvalidConfig):
				t.Fatalf("got %v, want it to wrap node.ErrInvalidConfig", err)
			}
		})
	}
}

// The per-submitter bound: 25,000 by default, 0 for none, never negative.
func TestValidateMaxPendingPerSubmitter(t *testing.T) {
	if d := node.DefaultConfig().MaxPendingPerSubmitter; d != 25_000 {
		t.Fatalf("default %d, want 25000", d)
	}
	for n, want := range map[int]string{0: "", 1: "", 25_000: "", -1: "max pending per submitter -1: want 0 (no bound) or more"} {
		cfg := node.DefaultConfig()
		cfg.Advertise = "127.0.0.2"
		cfg.MaxPendingPerSubmitter = n
		err := cfg.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, node.ErrInvalidConfig)) {
			t.Errorf("MaxPendingPerSubmitter %d: %v, want %q", n, err, want)
		}
	}
}

// TestLongestResultRetentionRecordsResults runs a task with the longest
// retention Validate accepts: etcd grants the lease and the result is
// recorded as done.
func TestLongestResultRetentionRecordsResults(t *testing.T) {
	c := durable(t, func(cfg *node.Config) { cfg.ResultRetention = taskstore.MaxRetention })
	_, workers := c.startN(2)
	cl := dial(t, workers[0])
	reply, err := cl.Submit(t.Context(), message.Submit{Number: 7})
	if err != nil || !reply.Accepted {
		t.Fatalf("submit: %+v, %v", reply, err)
	}
	if res, err := waitResult(t, cl, reply.UUID); err != nil || string(res.Result) != "21" {
		t.Fatalf("result %+v, %v", res, err)
	}
	testutil.Eventually(t, 10*time.Second, "the result recorded in etcd", func() bool {
		resp, err := c.cli.Get(t.Context(), keyspace.Task(c.cfg.Prefix, reply.UUID))
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		rec, err := taskstore.Decode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
		return err == nil && rec.State == taskstore.Done && resp.Kvs[0].Lease != 0
	})
}
