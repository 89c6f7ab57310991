package taskstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/taskstore"
)

// churn overwrites a few keys under the tasks prefix with 8 KiB values,
// txn after txn, until it has written total bytes and done() holds: the
// live data stays 128 KiB, the history grows with every txn.
func churn(t *testing.T, cli *clientv3.Client, total int, done func() bool) {
	t.Helper()
	const keys, size = 16, 8 << 10
	value := strings.Repeat("x", size)
	ops := make([]clientv3.Op, keys)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprintf("%s/churn-%02d", keyspace.Tasks(prefix), i), value)
	}
	deadline := time.Now().Add(time.Minute)
	for written := 0; written < total || !done(); written += keys * size {
		if time.Now().After(deadline) {
			t.Fatalf("churn: wrote %d bytes, the condition still does not hold", written)
		}
		if _, err := cli.Txn(t.Context()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func dbSize(t *testing.T, cli *clientv3.Client, endpoint string) (size, inUse int64) {
	t.Helper()
	st, err := cli.Status(t.Context(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return st.DbSize, st.DbSizeInUse
}

// TestCompactionBoundsHistory puts the same sustained overwrites into two
// etcds, one with a Compactor and one without: without, the database holds
// every revision; with, only those of the last Retain, so it stays a
// fraction of the other.
func TestCompactionBoundsHistory(t *testing.T) {
	const total = 24 << 20
	off, offCli := newEtcd(t)
	on, onCli := newEtcd(t)

	c := taskstore.NewCompactor(onCli, prefix, 100*time.Millisecond, nil)
	testutil.Go(t, c.Run)

	churn(t, offCli, total, func() bool { return true })
	churn(t, onCli, total, func() bool { return c.Stats().Compactions >= 5 })

	offSize, offInUse := dbSize(t, offCli, off.Endpoint())
	if offInUse < total/2 {
		t.Fatalf("without compaction the database uses %d bytes after %d were written: the history is not kept?", offInUse, total)
	}
	var onSize, onInUse int64
	testutil.Eventually(t, 20*time.Second, "the compacted database below a quarter of the other", func() bool {
		onSize, onInUse = dbSize(t, onCli, on.Endpoint())
		return onInUse < offInUse/4
	})
	t.Logf("after %d MiB of overwrites: without compaction %d KiB in use (file %d KiB), with %d KiB in use (file %d KiB), %d compactions",
		total>>20, offInUse>>10, offSize>>10, onInUse>>10, onSize>>10, c.Stats().Compactions)
	if onSize >= offSize {
		t.Errorf("the compacted database file is %d bytes, the other %d: freed pages are not reused", onSize, offSize)
	}
	if _, err := onCli.Get(t.Context(), keyspace.Tasks(prefix), clientv3.WithRev(1)); err == nil {
		t.Error("revision 1 can still be read: nothing was compacted")
	}
}

// TestCompactorKeepsItsWindow: with a Retain longer than the test, nothing
// is compacted however much is written, so every revision is still there.
func TestCompactorKeepsItsWindow(t *testing.T) {
	_, cli := newEtcd(t)
	first, err := cli.Put(t.Context(), prefix+"/first", "1")
	if err != nil {
		t.Fatal(err)
	}
	c := taskstore.NewCompactor(cli, prefix, time.Hour, nil)
	run := testutil.Go(t, c.Run)
	churn(t, cli, 1<<20, func() bool { return true })
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Compactions != 0 {
		t.Fatalf("compacted within the retained window: %+v", s)
	}
	if _, err := cli.Get(t.Context(), prefix+"/first", clientv3.WithRev(first.Header.Revision)); err != nil {
		t.Fatalf("a revision inside the window is gone: %v", err)
	}
}

// TestCompactorRefusesBadArguments: Run says what is wrong at once.
func TestCompactorRefusesBadArguments(t *testing.T) {
	_, cli := newEtcd(t)
	for _, c := range []*taskstore.Compactor{
		taskstore.NewCompactor(nil, prefix, time.Minute, nil),
		taskstore.NewCompactor(cli, prefix, 0, nil),
	} {
		if err := c.Run(t.Context()); err == nil {
			t.Error("Run accepted bad arguments")
		}
	}
}

// startQuotaEtcd starts an etcd whose database may hold at most quota bytes.
func startQuotaEtcd(t *testing.T, quota int64) (*etcdtest.Server, *clientv3.Client) {
	t.Helper()
	s := etcdtest.Start(t, embedetcd.Config{QuotaBackendBytes: quota})
	return s, newClient(t, s.Endpoint())
}

// TestCompactorFollowsAReplacedEtcd replaces etcd by an empty one under a
// running Compactor: the new etcd's revisions start low again, and the
// Compactor compacts them too instead of waiting for the old revision.
func TestCompactorFollowsAReplacedEtcd(t *testing.T) {
	srv, cli := newEtcd(t)
	c := taskstore.NewCompactor(cli, prefix, 50*time.Millisecond, nil)
	testutil.Go(t, c.Run)
	churn(t, cli, 1<<20, func() bool { return c.Stats().Revision > 200 })
	old := c.Stats().Revision

	srv.Replace() // empty: revisions start at 1 again
	testutil.Eventually(t, 20*time.Second, "the new etcd compacted", func() bool {
		if _, err := cli.Put(t.Context(), prefix+"/again", "x"); err != nil {
			return false
		}
		s := c.Stats()
		return s.Revision > 1 && s.Revision < old
	})
}
