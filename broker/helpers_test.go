package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/nats-io/nats.go"
)

// Loopback addresses of the test nodes; Linux routes all of 127/8 on lo.
const (
	ipA = "127.0.0.2"
	ipB = "127.0.0.3"
	ipC = "127.0.0.4"
	ipD = "127.0.0.5"
)

// startBroker starts a broker on ip with random ports, closed at cleanup.
func startBroker(t *testing.T, name, ip string, logger *slog.Logger) *broker.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Name = name
	cfg.Host = ip
	cfg.ClientPort = broker.RandomPort
	cfg.ClusterPort = broker.RandomPort
	cfg.Logger = logger
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	t.Cleanup(b.Close)
	return b
}

// startNode starts a broker that logs into a recorder.
func startNode(t *testing.T, name, ip string) node {
	t.Helper()
	rec := &logRecorder{}
	return node{name: name, b: startBroker(t, name, ip, slog.New(rec)), log: rec}
}

type node struct {
	name string
	b    *broker.Broker
	log  *logRecorder // everything the node logged, nats-server debug lines included
}

// mesh starts one broker per name (on ipA, ipB, ...) and routes each to all
// the others, then waits until every node routes to exactly the others.
func mesh(t *testing.T, names ...string) []node {
	t.Helper()
	ips := []string{ipA, ipB, ipC, ipD}
	nodes := make([]node, len(names))
	for i, n := range names {
		nodes[i] = startNode(t, n, ips[i])
	}
	connectAll(t, nodes)
	return nodes
}

// connectAll sets every node's peers to all the other nodes and waits for
// the full mesh.
func connectAll(t *testing.T, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.b.SetPeers(clusterURLs(nodes, n.name)); err != nil {
			t.Fatalf("%s.SetPeers: %v", n.name, err)
		}
	}
	for _, n := range nodes {
		waitRoutes(t, n, names(nodes, n.name)...)
	}
}

// waitRoutes waits until n routes to exactly want.
func waitRoutes(t *testing.T, n node, want ...string) {
	t.Helper()
	slices.Sort(want)
	testutil.EventuallyNil(t, 10*time.Second, func() error {
		if got := n.b.Routes(); !slices.Equal(got, want) {
			return fmt.Errorf("%s.Routes() = %v, want %v", n.name, got, want)
		}
		return nil
	})
}

func clusterURLs(nodes []node, except string) []string {
	var urls []string
	for _, n := range nodes {
		if n.name != except {
			urls = append(urls, n.b.ClusterURL())
		}
	}
	return urls
}

func names(nodes []node, except string) []string {
	var out []string
	for _, n := range nodes {
		if n.name != except {
			out = append(out, n.name)
		}
	}
	return out
}

// logRecorder is a slog.Handler keeping every record's time and message.
type logRecorder struct {
	mu   sync.Mutex
	recs []logLine
}

type logLine struct {
	at  time.Time
	msg string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, logLine{at: rec.Time, msg: rec.Message})
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// lines returns the recorded messages.
func (r *logRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.recs))
	for i, l := range r.recs {
		out[i] = l.msg
	}
	return out
}

// matching returns the recorded messages containing substr.
func (r *logRecorder) matching(substr string) []string {
	return r.matchingSince(substr, time.Time{})
}

// matchingSince returns the messages containing substr logged after since.
func (r *logRecorder) matchingSince(substr string, since time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.recs {
		if l.at.After(since) && strings.Contains(l.msg, substr) {
			out = append(out, l.msg)
		}
	}
	return out
}

// publishUntilReceived publishes data on subject through pub and reports
// whether it arrived on msgs within a short wait. Interest crosses routes
// asynchronously, so callers retry it with eventually.
func publishUntilReceived(pub *nats.Conn, subject, data string, msgs <-chan *nats.Msg) error {
	if err := pub.Publish(subject, []byte(data)); err != nil {
		return err
	}
	wait := time.NewTimer(50 * time.Millisecond)
	defer wait.Stop()
	for {
		select {
		case m := <-msgs:
			if string(m.Data) == data {
				return nil
			}
		case <-wait.C:
			return fmt.Errorf("%q published on %s not received", data, subject)
		}
	}
}

// fullPool is the number of route connections between two settled
// nodes: nats-server's default route pool of 3 plus one pinned to the
// system account.
const fullPool = 4

// routeConns returns how many route connections n has with peer.
func routeConns(n node, peer string) int {
	rz, err := n.b.Server().Routez(nil)
	if err != nil {
		return -1
	}
	var count int
	for _, r := range rz.Routes {
		if r.RemoteName == peer {
			count++
		}
	}
	return count
}
