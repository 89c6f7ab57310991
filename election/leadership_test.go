package election_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/tcpproxy"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

// A leader cut off from etcd steps down (ErrLeaseExpiring, Valid false)
// while its lease is still alive on the server: it cannot act after another
// node may have been elected.
func TestCutOffLeaderStepsDownBeforeItsLeaseExpires(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	raw := newClient(t, srv.Endpoint())
	proxy, err := tcpproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.Addr()}, DialTimeout: time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	const ttl = 6 * time.Second
	cfg := election.DefaultConfig()
	cfg.Prefix, cfg.TTL, cfg.Logger = testPrefix, ttl, slog.New(slog.DiscardHandler)
	el, err := election.New(cli, "cut", cfg)
	if err != nil {
		t.Fatal(err)
	}
	type lost struct {
		at    time.Time
		cause error
		valid bool
	}
	leading := make(chan election.Leadership, 1)
	ended := make(chan lost, 1)
	// Run's error is not checked: the cut may end it either way.
	run := testutil.Go(t, func(ctx context.Context) error {
		_ = el.Run(ctx, func(lctx context.Context, l election.Leadership) {
			select {
			case leading <- l:
			default:
				return // only the first term is observed
			}
			<-lctx.Done()
			ended <- lost{at: time.Now(), cause: context.Cause(lctx), valid: l.Valid()}
		})
		return nil
	})
	defer run.Stop() // before cli.Close and proxy.Close; Go's cleanup reports a Run that outlived 10 s

	var l election.Leadership
	select {
	case l = <-leading:
	case <-time.After(10 * time.Second):
		t.Fatal("never led")
	}
	if !l.Valid() || time.Until(l.Deadline()) < ttl/2 {
		t.Fatalf("a fresh leadership must be valid for most of the TTL: valid=%v deadline in %s", l.Valid(), time.Until(l.Deadline()))
	}
	resp, err := raw.Get(t.Context(), l.Key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key %s: %v", l.Key, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)

	cutAt := time.Now()
	proxy.Cut()
	var e lost
	select {
	case e = <-ended:
	case <-time.After(2 * ttl):
		t.Fatal("the cut-off leader never stepped down")
	}
	ttlResp, err := raw.TimeToLive(t.Context(), lease)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stepped down %s after the cut (ttl %s); the lease had %ds left on the server", e.at.Sub(cutAt).Round(time.Millisecond), ttl, ttlResp.TTL)
	// Either the leadership's own deadline passed first, or the client
	// gave up its keep-alive stream (a broken pipe through the cut proxy,
	// seen under load) and the session ended: both end it in time.
	if !errors.Is(e.cause, election.ErrLeaseExpiring) && !errors.Is(e.cause, election.ErrSessionLost) {
		t.Errorf("cause %v, want ErrLeaseExpiring or ErrSessionLost", e.cause)
	}
	if e.valid {
		t.Error("Valid() still true when the leadership ended")
	}
	if ttlResp.TTL <= 0 {
		t.Errorf("the lease had already expired on the server (TTL %d) when the leader stepped down", ttlResp.TTL)
	}
}
