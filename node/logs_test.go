package node_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// Thousands of garbage task records, tasks, results and submissions make a
// bounded number of short log lines, not one line each nor one huge line.
func TestGarbageMakesFewShortLogLines(t *testing.T) {
	sink := &testutil.Buffer{}
	c := durable(t, func(cfg *node.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(sink, nil))
	})
	ctx := t.Context()
	const records = 2003
	for i := 0; i < records; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, records); j++ {
			key := keyspace.Task(c.cfg.Prefix, fmt.Sprintf("garbage-%04d-%s", j, strings.Repeat("k", 100)))
			ops = append(ops, clientv3.OpPut(key, "garbage record"))
		}
		if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	master, workers := c.startN(3)
	// The master takes submissions and results once one is answered.
	cl := dial(t, master)
	if _, err := cl.Submit(ctx, message.Submit{Number: 1}); err != nil {
		t.Fatal(err)
	}
	// Each node is sent its garbage through its own server: a message
	// that crosses a route just after the cluster formed can be lost (see
	// docs/guarantees.md), and this test counts refusals.
	connect := func(n *node.Node) *nats.Conn {
		nc, err := nats.Connect(clientURL(t, n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	pub := connect(master)
	direct := map[string]*nats.Conn{}
	for _, w := range workers {
		direct[w.ID()] = connect(w)
	}

	const each = 1000
	pad := strings.Repeat("garbage", 400)
	stamp := message.NewTimestamp(time.Now())
	for i := range each {
		body := []byte(fmt.Sprintf("garbage %d %s", i, pad))
		for _, w := range workers {
			if err := direct[w.ID()].Publish(message.TaskSubject(w.ID()), body); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Publish(message.SubjectResults, body); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(message.SubjectSubmit, body); err != nil {
			t.Fatal(err)
		}
		// Well formed, about a task nobody tracks.
		stray := message.Result{UUID: uuid.NewString(), Executor: workers[0].ID(), Number: 1, Kind: message.KindTriple, Result: json.RawMessage("3"), Start: stamp, Finish: stamp, Term: 1}
		if err := pub.Publish(message.SubjectResults, stray.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("master %+v", master.Status().Dispatch)
			for _, w := range workers {
				t.Logf("worker %+v", w.Status().Worker)
			}
		}
	})
	testutil.Eventually(t, 30*time.Second, "every garbage message refused", func() bool {
		d := master.Status().Dispatch
		for _, w := range workers {
			if w.Status().Worker.Refused < each {
				return false
			}
		}
		return d.BadResults >= each && d.Refused >= each
	})
	elapsed := time.Since(start)

	// At most one line per node per interval for each kind, and a few more
	// for an interval that began before the test's clock did.
	limit := 3 * (2 + int(elapsed/ratelog.DefaultInterval))
	count := map[string]int{}
	for _, l := range sink.Lines() {
		if len(l) > 8*ratelog.MaxValue {
			t.Errorf("a log line of %d bytes: %.300s…", len(l), l)
		}
		var m struct {
			Msg   string `json:"msg"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %.200q: %v", l, err)
		}
		count[m.Msg]++
		if m.Msg == "task records that do not decode are left out" && m.Count != records {
			t.Errorf("bad records line says count %d, want %d", m.Count, records)
		}
	}
	if count["task records that do not decode are left out"] == 0 {
		t.Error("no line says the garbage records were left out")
	}
	for _, msg := range []string{"task refused", "bad result refused", "submission refused", "result for a task this master does not track"} {
		if n := count[msg]; n == 0 || n > limit {
			t.Errorf("%d lines %q for %d messages in %s, want 1 to %d", n, msg, each, elapsed.Round(time.Second), limit)
		}
	}
}
