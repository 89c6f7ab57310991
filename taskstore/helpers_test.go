package taskstore_test

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

const prefix = "/meshpool"

// newClient connects to endpoint until the test ends, with opts.
func newClient(t testing.TB, endpoint string, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, endpoint, func(c *clientv3.Config) { c.DialOptions = opts })
}

// newEtcd starts an etcd and returns a client of it.
func newEtcd(t testing.TB) (*etcdtest.Server, *clientv3.Client) {
	t.Helper()
	return etcdtest.New(t)
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
	run *testutil.Running
}

// startWriter runs a Writer until stop or the end of the test, which
// checks that Run returned nil.
func startWriter(t testing.TB, cli *clientv3.Client, fence taskstore.Fence, opts taskstore.Config) *writer {
	t.Helper()
	w := &writer{Writer: taskstore.NewWriter(cli, prefix, fence, opts)}
	w.run = testutil.Go(t, w.Run)
	return w
}

// stop cancels Run and waits for it.
func (w *writer) stop() error { return w.run.Stop() }

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
		Kind:      message.KindTriple,
		Payload:   json.RawMessage(strconv.FormatInt(n, 10)),
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
		Kind:     r.Kind,
		Number:   r.Number,
		Result:   message.TripleResult(r.Number),
		Start:    message.NewTimestamp(submitted.Add(time.Second)),
		Finish:   message.NewTimestamp(submitted.Add(3 * time.Second)),
		Term:     r.Term,
	}
	return r
}

// get returns the record at uuid's key; ok false if absent.
func get(t testing.TB, cli *clientv3.Client, id string) (rec taskstore.Record, kv *clientv3.GetResponse, ok bool) {
	t.Helper()
	key := keyspace.Task(prefix, id)
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
	resp, err := cli.Get(t.Context(), keyspace.Tasks(prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
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
