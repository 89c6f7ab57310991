package schedule_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/schedule"
)

const prefix = "/meshpool"

func TestLoad(t *testing.T) {
	_, cli := etcdtest.New(t)
	got, rev, err := schedule.Load(t.Context(), cli, prefix)
	if err != nil || len(got) != 0 || rev == 0 {
		t.Fatalf("Load of none = %v, %d, %v; want no schedules at a revision", got, rev, err)
	}

	// More than a page, written out of order, and one bad record.
	const n = 150
	var want []string
	for i := n - 1; i >= 0; i-- {
		s := valid("@hourly")
		s.Name = fmt.Sprintf("s%03d", i)
		value, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(t.Context(), keyspace.Schedule(prefix, s.Name), value); err != nil {
			t.Fatal(err)
		}
		want = append([]string{s.Name}, want...)
	}
	badKey := keyspace.Schedule(prefix, "s050x")
	if _, err := cli.Put(t.Context(), badKey, "not json"); err != nil {
		t.Fatal(err)
	}
	// Not a schedule: another key space.
	if _, err := cli.Put(t.Context(), keyspace.Task(prefix, "u"), "{}"); err != nil {
		t.Fatal(err)
	}

	got, rev, err = schedule.Load(t.Context(), cli, prefix)
	var bad *schedule.BadRecordsError
	if !errors.Is(err, schedule.ErrBadRecord) || !errors.As(err, &bad) || len(bad.Keys) != 1 || bad.Keys[0] != badKey || !strings.Contains(err.Error(), badKey) {
		t.Fatalf("Load: %v; want a BadRecordsError naming %s", err, badKey)
	}
	if rev == 0 || len(got) != n {
		t.Fatalf("Load returned %d schedules at revision %d, want %d", len(got), rev, n)
	}
	for i, s := range got {
		if s.Name != want[i] {
			t.Fatalf("schedule %d is %s, want %s: sorted by name", i, s.Name, want[i])
		}
	}

	if _, _, err := schedule.Load(t.Context(), cli, "meshpool/"); err == nil || !strings.Contains(err.Error(), "prefix must start with '/'") {
		t.Fatalf("Load with a bad prefix: %v", err)
	}
}
