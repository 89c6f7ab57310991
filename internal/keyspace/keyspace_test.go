package keyspace_test

import (
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/lease"

	"github.com/meshpool/meshpool/internal/keyspace"
)

func TestMaxLeaseTTLIsEtcds(t *testing.T) {
	if want := lease.MaxLeaseTTL * time.Second; keyspace.MaxLeaseTTL != want {
		t.Fatalf("MaxLeaseTTL %s, etcd's is %s", keyspace.MaxLeaseTTL, want)
	}
}

func TestCheckTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want string // in the error; "" for none
	}{
		{keyspace.MinTTL, ""},
		{10 * time.Second, ""},
		{keyspace.MaxLeaseTTL, ""},
		{time.Second, "at least"},
		{-time.Second, "at least"},
		{2500 * time.Millisecond, "whole seconds"},
		{keyspace.MaxLeaseTTL + time.Second, "at most 2500000h0m0s (etcd's longest lease)"},
		{1<<63 - 1, "at most"},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			err := keyspace.CheckTTL(tc.ttl)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// The layout is a contract (docs/contracts.md): nodes, peers of another
// version and operators' tools read these keys.
func TestLayout(t *testing.T) {
	const p = "/meshpool"
	for _, tc := range []struct{ got, want string }{
		{keyspace.Nodes(p), "/meshpool/nodes/"},
		{keyspace.Node(p, "a-1"), "/meshpool/nodes/a-1"},
		{keyspace.Election(p), "/meshpool/election"},
		{keyspace.Tasks(p), "/meshpool/tasks/"},
		{keyspace.Task(p, "u"), "/meshpool/tasks/u"},
		{keyspace.Schedules(p), "/meshpool/schedules/"},
		{keyspace.Schedule(p, "nightly"), "/meshpool/schedules/nightly"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
