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

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/registry"
)

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, endpoint)
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
	logs *logStore
	run  *testutil.Running
}

// startNode runs a Registry for rec until the test ends (or stop).
func startNode(t *testing.T, cli *clientv3.Client, rec registry.Record, prefix string, ttl time.Duration) *node {
	t.Helper()
	logs := newLogStore(t, rec.ID)
	reg, err := registry.New(cli, rec, registry.Config{Prefix: prefix, TTL: ttl, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	return &node{Registry: reg, logs: logs, run: testutil.Go(t, reg.Run)}
}

// stop cancels Run and waits for it; safe to call twice.
func (n *node) stop() error { return n.run.Stop() }

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
