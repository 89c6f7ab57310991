package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/registry"
)

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consistently polls cond every 20ms for d and fails as soon as it does not hold.
func consistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("not always true during %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// etcdServer is an embedded etcd whose Close may be called twice:
// embedetcd.Server.Close panics the second time (embed.Etcd.Close closes a
// channel without a guard), although its doc says otherwise.
type etcdServer struct {
	*embedetcd.Server
	once sync.Once
}

func (s *etcdServer) Close() { s.once.Do(s.Server.Close) }

// startEtcd starts an embedded etcd in dir, stopped when the test ends;
// clientPort 0 picks a free port.
func startEtcd(t *testing.T, dir string, clientPort int) *etcdServer {
	t.Helper()
	srv, err := embedetcd.Start(embedetcd.Config{Dir: dir, Host: "127.0.0.1", ClientPort: clientPort})
	if err != nil {
		t.Fatal(err)
	}
	s := &etcdServer{Server: srv}
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func testRecord(id, ip string) registry.Record {
	return registry.Record{
		ID:         id,
		Name:       id,
		IP:         ip,
		ClientURL:  "nats://" + ip + ":4222",
		ClusterURL: "nats://" + ip + ":6222",
		HTTPURL:    "http://" + ip + ":8222",
		Version:    "test",
		Started:    time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC),
	}
}

// node is a Registry running in the background.
type node struct {
	*registry.Registry
	logs   *logStore
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startNode runs a Registry for rec until the test ends (or stop).
func startNode(t *testing.T, cli *clientv3.Client, rec registry.Record, prefix string, ttl time.Duration) *node {
	t.Helper()
	logs := newLogStore(t, rec.ID)
	reg, err := registry.New(cli, rec, registry.Config{Prefix: prefix, TTL: ttl, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Registry: reg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- reg.Run(ctx) }()
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// stop cancels Run and waits for it; safe to call twice.
func (n *node) stop() error {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				n.err = fmt.Errorf("Run returned %w", err)
			}
		case <-time.After(10 * time.Second):
			n.err = fmt.Errorf("Run did not return 10s after its context ended")
		}
	})
	return n.err
}

func (n *node) ids() []string {
	m, _ := n.Membership()
	return m.IDs()
}

// getKV reads one key; nil if absent or on error.
func getKV(t *testing.T, cli *clientv3.Client, key string) *clientv3.GetResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Logf("get %s: %s", key, err)
		return nil
	}
	return resp
}

// leaseOf returns the lease of key, or 0 if the key is absent.
func leaseOf(t *testing.T, cli *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	resp := getKV(t, cli, key)
	if resp == nil || len(resp.Kvs) == 0 {
		return 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// logStore records log entries so tests can assert on them.
type logStore struct {
	mu      sync.Mutex
	entries []logEntry
}

type logEntry struct {
	time  time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

func (e logEntry) String() string {
	keys := make([]string, 0, len(e.attrs))
	for k := range e.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", e.time.Format("15:04:05.000"), e.level, e.msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, e.attrs[k])
	}
	return b.String()
}

// newLogStore returns a store whose entries are printed if the test fails.
func newLogStore(t *testing.T, name string) *logStore {
	s := &logStore{}
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, e := range s.entries {
				t.Logf("%s: %s", name, e)
			}
		}
	})
	return s
}

func (s *logStore) logger() *slog.Logger { return slog.New(recorder{store: s}) }

// count returns how many entries have msg and every key=value pair in kv.
func (s *logStore) count(msg string, kv ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if e.msg == msg && e.has(kv) {
			n++
		}
	}
	return n
}

func (s *logStore) has(msg string, kv ...string) bool { return s.count(msg, kv...) > 0 }

// find returns the entries with msg.
func (s *logStore) find(msg string) []logEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []logEntry
	for _, e := range s.entries {
		if e.msg == msg {
			found = append(found, e)
		}
	}
	return found
}

func (e logEntry) has(kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if v, ok := e.attrs[kv[i]]; !ok || v != kv[i+1] {
			return false
		}
	}
	return true
}

type recorder struct {
	store *logStore
	attrs []slog.Attr
}

func (h recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h recorder) Handle(_ context.Context, r slog.Record) error {
	e := logEntry{time: r.Time, level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		e.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		e.attrs[a.Key] = a.Value.String()
		return true
	})
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	h.store.entries = append(h.store.entries, e)
	return nil
}

func (h recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return recorder{store: h.store, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h recorder) WithGroup(string) slog.Handler { return h }
