package taskstore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/taskstore"
)

// fillToNoSpace overwrites one key with 256 KiB values until etcd refuses
// the write for lack of space: only history fills the database.
func fillToNoSpace(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	value := strings.Repeat("x", 256<<10)
	for i := 0; ; i++ {
		_, err := cli.Put(t.Context(), prefix+"/fill", value)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 1000 {
			t.Fatal("etcd never ran out of space")
		}
	}
}

// freeSpace does what docs/failures.md tells an operator: compact the history,
// defragment, disarm the alarm.
func freeSpace(t *testing.T, cli *clientv3.Client, endpoint string) {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Defragment(t.Context(), endpoint); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AlarmDisarm(t.Context(), &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
}

// TestNoSpaceIsReportedAndRecovers fills a small etcd with history until it
// raises NOSPACE: a task write is refused with ErrNoSpace and a clear text,
// Alarms shows the alarm; once an operator compacts, defragments and
// disarms, the writes go through again and the alarm is cleared.
func TestNoSpaceIsReportedAndRecovers(t *testing.T) {
	srv, cli := startQuotaEtcd(t, 4<<20)
	w := startWriter(t, cli, newFence(t, cli), options(time.Minute))
	alarms := taskstore.NewAlarms(cli, nil)
	alarms.Interval = 20 * time.Millisecond
	testutil.Go(t, alarms.Run)

	r := pending(1)
	if err := w.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	fillToNoSpace(t, cli)

	err := w.Put(t.Context(), pending(2))
	if !errors.Is(err, taskstore.ErrNoSpace) || !strings.Contains(err.Error(), "etcd is out of space (NOSPACE alarm): ") {
		t.Fatalf("Put on a full etcd: %v, want ErrNoSpace", err)
	}
	if err := w.Complete(t.Context(), done(r)); !errors.Is(err, taskstore.ErrNoSpace) {
		t.Fatalf("Complete on a full etcd: %v, want ErrNoSpace", err)
	}
	testutil.Eventually(t, 10*time.Second, "the NOSPACE alarm shown", func() bool {
		return slices.Equal(alarms.Active(), []string{"NOSPACE"})
	})
	if got := alarms.Reason(); !strings.HasPrefix(got, "etcd is out of space (NOSPACE alarm): ") {
		t.Fatalf("Reason = %q", got)
	}

	freeSpace(t, cli, srv.Endpoint())
	if err := w.Put(t.Context(), pending(3)); err != nil {
		t.Fatalf("Put after space was freed: %v", err)
	}
	if err := w.Complete(t.Context(), done(r)); err != nil {
		t.Fatalf("Complete after space was freed: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "the alarm cleared", func() bool { return alarms.Active() == nil && alarms.Reason() == "" })
}
