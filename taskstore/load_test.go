package taskstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/taskstore"
)

func TestPutThenLoad(t *testing.T) {
	_, cli := newEtcd(t)
	fence := newFence(t, cli)
	w := startWriter(t, cli, fence, options(taskstore.DefaultConfig().Retention))

	p := pending(31)
	p.Executor, p.Attempts = "", 0
	d := done(pending(45))
	if err := w.Put(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := w.Complete(t.Context(), d); err != nil {
		t.Fatal(err)
	}

	got, rev, err := taskstore.Load(t.Context(), cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if rev <= fence.Term {
		t.Errorf("Load revision %d, want after the fence's %d", rev, fence.Term)
	}
	// The Writer stamps its term on what it writes.
	p.Term, d.Term = fence.Term, fence.Term
	want := map[string]taskstore.Record{p.UUID: p, d.UUID: d}
	if len(got) != len(want) {
		t.Fatalf("Load returned %d records, want %d: %+v", len(got), len(want), got)
	}
	for _, r := range got {
		if !same(t, r, want[r.UUID]) {
			t.Errorf("Load returned %+v, want %+v", r, want[r.UUID])
		}
	}
}

func TestLoadEmpty(t *testing.T) {
	_, cli := newEtcd(t)
	got, rev, err := taskstore.Load(t.Context(), cli, prefix)
	if err != nil || len(got) != 0 || rev == 0 {
		t.Fatalf("Load = %v, %d, %v; want no records at a revision", got, rev, err)
	}
}

func TestLoadBadRecord(t *testing.T) {
	_, cli := newEtcd(t)
	key := keyspace.Task(prefix, pending(1).UUID)
	if _, err := cli.Put(t.Context(), key, "not json"); err != nil {
		t.Fatal(err)
	}
	good := pending(2)
	if _, err := cli.Put(t.Context(), keyspace.Task(prefix, good.UUID), string(mustJSON(t, good))); err != nil {
		t.Fatal(err)
	}
	recs, _, err := taskstore.Load(t.Context(), cli, prefix)
	var bad *taskstore.BadRecordsError
	if !errors.Is(err, taskstore.ErrBadRecord) || !strings.Contains(err.Error(), key) || !errors.As(err, &bad) || len(bad.Keys) != 1 {
		t.Fatalf("Load: %v; want a BadRecordsError naming %s", err, key)
	}
	// The good record still comes back: one corrupt key must not stop a
	// master from resuming the others.
	if len(recs) != 1 || recs[0].UUID != good.UUID {
		t.Fatalf("Load returned %+v with the bad record, want just the good one", recs)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoadPages loads more records than one page holds while another client
// changes them after the first page: Load must page (several Range calls,
// each limited) and return the records as they were at the first page's
// revision.
func TestLoadPages(t *testing.T) {
	const n = 2500
	srv, cli := newEtcd(t)

	var records []taskstore.Record
	var rev int64
	for len(records) < n {
		var ops []clientv3.Op
		for range 100 {
			r := pending(int64(len(records)))
			records = append(records, r)
			v, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(keyspace.Task(prefix, r.UUID), string(v)))
		}
		resp, err := cli.Txn(t.Context()).Then(ops...).Commit()
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	slices.SortFunc(records, func(a, b taskstore.Record) int { return strings.Compare(a.UUID, b.UUID) })

	// After the first page: add a record that sorts last, delete the last
	// one, and change one in the middle.
	added := pending(-1)
	added.UUID = "ffffffff-ffff-4fff-bfff-ffffffffffff"
	deleted, changed := records[n-1], records[n/2]
	var ranges, unlimited atomic.Int32
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		rr, ok := req.(*pb.RangeRequest)
		if !ok || !strings.HasPrefix(string(rr.Key), keyspace.Tasks(prefix)) {
			return err
		}
		if rr.Limit == 0 || rr.Limit > 1000 {
			unlimited.Add(1)
		}
		if ranges.Add(1) == 1 {
			c := changed
			c.Number, c.Payload = 1e6, json.RawMessage("1000000")
			v, _ := json.Marshal(c)
			a, _ := json.Marshal(added)
			if _, err := cli.Txn(ctx).Then(
				clientv3.OpPut(keyspace.Task(prefix, added.UUID), string(a)),
				clientv3.OpDelete(keyspace.Task(prefix, deleted.UUID)),
				clientv3.OpPut(keyspace.Task(prefix, changed.UUID), string(v)),
			).Commit(); err != nil {
				t.Errorf("cannot change records during Load: %v", err)
			}
		}
		return err
	}
	loader := newClient(t, srv.Endpoint(), grpc.WithChainUnaryInterceptor(intercept))

	got, gotRev, err := taskstore.Load(t.Context(), loader, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if gotRev != rev {
		t.Errorf("Load revision %d, want %d", gotRev, rev)
	}
	if r := ranges.Load(); r < 3 {
		t.Errorf("Load made %d Range calls for %d records, want pages of at most 1000", r, n)
	}
	if u := unlimited.Load(); u > 0 {
		t.Errorf("%d Range calls without a limit of at most 1000", u)
	}
	if len(got) != n {
		t.Fatalf("Load returned %d records, want %d", len(got), n)
	}
	for i := range got {
		if !same(t, got[i], records[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], records[i])
		}
	}
	// The changes did happen: a fresh Load sees them.
	now, _, err := taskstore.Load(t.Context(), cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != n || now[n-1].UUID != added.UUID {
		t.Fatalf("after the changes Load returned %d records ending with %s", len(now), now[len(now)-1].UUID)
	}
}

// Thousands of bad records make a short error: a count and the first few
// reasons, never every key (2,003 of them once made a 268 KB log line).
func TestBadRecordsErrorIsBounded(t *testing.T) {
	var bad taskstore.BadRecordsError
	for i := range 2003 {
		key := keyspace.Task(prefix, fmt.Sprintf("garbage-%d-%s", i, strings.Repeat("x", 500)))
		_, err := taskstore.Decode(key, []byte(strings.Repeat("not json ", 100)))
		bad.Keys = append(bad.Keys, key)
		bad.Errs = append(bad.Errs, err)
	}
	msg := bad.Error()
	if len(msg) > 2048 {
		t.Fatalf("error is %d bytes, want at most 2048: %.300s…", len(msg), msg)
	}
	for _, want := range []string{"2003 task records", "garbage-0-", "and 2000 more"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if !errors.Is(&bad, taskstore.ErrBadRecord) {
		t.Error("not ErrBadRecord")
	}
}

func TestGet(t *testing.T) {
	_, cli := newEtcd(t)
	fence := newFence(t, cli)
	w := startWriter(t, cli, fence, options(taskstore.DefaultConfig().Retention))
	d := done(pending(12))
	if err := w.Complete(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	d.Term = fence.Term
	got, found, err := taskstore.Get(t.Context(), cli, prefix, d.UUID)
	if err != nil || !found || !same(t, got, d) {
		t.Fatalf("Get = %+v, %v, %v; want %+v, found", got, found, err, d)
	}
	missing := pending(13)
	if got, found, err := taskstore.Get(t.Context(), cli, prefix, missing.UUID); err != nil || found {
		t.Fatalf("Get of a uuid never written = %+v, %v, %v; want not found", got, found, err)
	}
	if _, err := cli.Put(t.Context(), keyspace.Task(prefix, missing.UUID), "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := taskstore.Get(t.Context(), cli, prefix, missing.UUID); !found || !errors.Is(err, taskstore.ErrBadRecord) {
		t.Fatalf("Get of a record that does not decode: found %v, err %v; want found and ErrBadRecord", found, err)
	}
	if _, _, err := taskstore.Get(t.Context(), cli, "meshpool/", d.UUID); err == nil {
		t.Fatal("Get with a bad prefix: no error")
	}
}
