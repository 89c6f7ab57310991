package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// An outage keeps the data and the address; a replacement keeps only the
// address.
func TestStopRestartReplace(t *testing.T) {
	srv, cli := etcdtest.New(t)
	endpoint := srv.Endpoint()
	if _, err := cli.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Stop() // twice is fine
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := cli.Get(ctx, "k")
	cancel()
	if err == nil {
		t.Fatal("a stopped etcd answered")
	}
	srv.Restart()
	get := func() int {
		t.Helper()
		var n int
		testutil.EventuallyNil(t, 10*time.Second, func() error {
			resp, err := cli.Get(t.Context(), "k")
			if err == nil {
				n = len(resp.Kvs)
			}
			return err
		})
		return n
	}
	if srv.Endpoint() != endpoint || get() != 1 {
		t.Fatalf("after a restart: endpoint %s (was %s), or the key is lost", srv.Endpoint(), endpoint)
	}
	srv.Replace()
	if srv.Endpoint() != endpoint || get() != 0 {
		t.Fatalf("after a replacement: endpoint %s (was %s), or the key is still there", srv.Endpoint(), endpoint)
	}
	// Restart of a running server stops it first.
	if _, err := cli.Put(t.Context(), "k", "v2"); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if get() != 1 {
		t.Fatal("after a restart of a running server: the key is lost")
	}
}
