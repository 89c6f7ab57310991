package taskstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

const prefix = "/meshpool"

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// etcdServer is an embedded etcd whose Close may be called twice.
type etcdServer struct {
	*embedetcd.Server
	once sync.Once
}

func (s *etcdServer) Close() { s.once.Do(s.Server.Close) }

// startEtcd starts an embedded etcd in dir, stopped when the test ends;
// clientPort 0 picks a free port.
func startEtcd(t testing.TB, dir string, clientPort int) *etcdServer {
	t.Helper()
	srv, err := embedetcd.Start(embedetcd.Config{Dir: dir, ClientPort: clientPort})
	if err != nil {
		t.Fatal(err)
	}
	s := &etcdServer{Server: srv}
	t.Cleanup(s.Close)
	return s
}

// newClient connects to endpoint until the test ends.
func newClient(t testing.TB, endpoint string, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		DialOptions: opts,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// newEtcd starts an etcd and returns a client of it.
func newEtcd(t testing.TB) (*etcdServer, *clientv3.Client) {
	t.Helper()
	srv := startEtcd(t, t.TempDir(), 0)
	return srv, newClient(t, srv.Endpoint())
}

// newFence creates an election-like key and returns the fence of its term.
func newFence(t testing.TB, cli *clientv3.Client) taskstore.Fence {
	t.Helper()
	key := prefix + "/election/" + uuid.NewString()[:8]
	resp, err := cli.Put(t.Context(), key, "master")
	if err != nil {
		t.Fatal(err)
	}
	return taskstore.Fence{Key: key, Term: resp.Header.Revision}
}

// writer is a Writer running in the background.
type writer struct {
	*taskstore.Writer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startWriter runs a Writer until stop or the end of the test, which
// checks that Run returned nil.
func startWriter(t testing.TB, cli *clientv3.Client, fence taskstore.Fence, opts taskstore.Config) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{Writer: taskstore.NewWriter(cli, prefix, fence, opts), cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		if err := w.stop(); err != nil {
			t.Error(err)
		}
	})
	return w
}

// stop cancels Run and waits for it.
func (w *writer) stop() error {
	w.once.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				w.err = fmt.Errorf("Run returned %w", err)
			}
		case <-time.After(10 * time.Second):
			w.err = fmt.Errorf("Run did not return 10s after its context ended")
		}
	})
	return w.err
}

func options(retention time.Duration) taskstore.Config {
	o := taskstore.DefaultConfig()
	o.Retention = retention
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

var submitted = time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC)

// pending returns a valid pending record with a fresh UUID.
func pending(n int64) taskstore.Record {
	return taskstore.Record{
		UUID:      uuid.NewString(),
		Number:    n,
		Executor:  "node-a-1234abcd",
		Term:      1,
		State:     taskstore.Pending,
		Submitted: submitted,
		Attempts:  1,
	}
}

// done returns r with a result.
func done(r taskstore.Record) taskstore.Record {
	r.State = taskstore.Done
	r.Result = &message.Result{
		UUID:     r.UUID,
		Executor: r.Executor,
		Number:   r.Number,
		Result:   r.Number * 3,
		Start:    message.NewTimestamp(submitted.Add(time.Second)),
		Finish:   message.NewTimestamp(submitted.Add(3 * time.Second)),
		Term:     r.Term,
	}
	return r
}

// get returns the record at uuid's key; ok false if absent.
func get(t testing.TB, cli *clientv3.Client, id string) (rec taskstore.Record, kv *clientv3.GetResponse, ok bool) {
	t.Helper()
	key := taskstore.Key(prefix, id)
	resp, err := cli.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return taskstore.Record{}, resp, false
	}
	rec, err = taskstore.Decode(key, resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return rec, resp, true
}

// count returns how many keys are under the tasks prefix.
func count(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), taskstore.Prefix(prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// same compares records as they travel, so that time zones and monotonic
// clock readings do not matter.
func same(t testing.TB, a, b taskstore.Record) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}
