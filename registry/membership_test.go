package registry_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
	"github.com/meshpool/meshpool/registry"
)

func TestMembershipAccessors(t *testing.T) {
	m := registry.Membership{Revision: 7, Members: []registry.Record{
		testRecord("a", "10.0.0.1"), testRecord("b", "10.0.0.2"), testRecord("c", "10.0.0.3"),
	}}
	tests := []struct {
		name       string
		m          registry.Membership
		self       string
		wantOthers []string
		wantIDs    []string
	}{
		{"self in the middle", m, "b", []string{"a", "c"}, []string{"a", "b", "c"}},
		{"self first", m, "a", []string{"b", "c"}, []string{"a", "b", "c"}},
		{"self not a member", m, "z", []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"empty", registry.Membership{}, "a", []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			others := registry.Membership{Members: tt.m.Others(tt.self)}.IDs()
			if !slices.Equal(others, tt.wantOthers) {
				t.Errorf("Others(%q) = %v, want %v", tt.self, others, tt.wantOthers)
			}
			if ids := tt.m.IDs(); !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("IDs() = %v, want %v", ids, tt.wantIDs)
			}
		})
	}

	for _, id := range []string{"a", "b", "c"} {
		r, ok := m.Lookup(id)
		if !ok || r.ID != id {
			t.Errorf("Lookup(%q) = %+v, %t", id, r, ok)
		}
	}
	for _, id := range []string{"", "0", "bb", "d"} {
		if r, ok := m.Lookup(id); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", id, r)
		}
	}

	others := m.Others("a")
	others[0].ID = "changed"
	if m.Members[1].ID != "b" {
		t.Error("Others returned a slice that shares memory with Members")
	}
}

func TestList(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	ctx := t.Context()

	put := func(key, value string) int64 {
		t.Helper()
		resp, err := cli.Put(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	for _, id := range []string{"c", "a", "b"} {
		b, _ := json.Marshal(testRecord(id, "10.0.0.1"))
		put(keyspace.Node("/mp", id), string(b))
	}
	nested, _ := json.Marshal(testRecord("x", "10.0.0.1"))
	put("/mp/nodes/deeper/x", string(nested))
	put("/mp/nodes/broken", "{")
	put("/mp/other", "not a node")
	outside, _ := json.Marshal(testRecord("z", "10.0.0.1"))
	rev := put("/mpx/nodes/z", string(outside)) // another prefix that starts alike

	m, err := registry.List(ctx, cli, "/mp")
	if err != nil {
		t.Fatal(err)
	}
	if ids := m.IDs(); !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("List IDs = %v, want [a b c] (bad, nested and foreign keys left out)", ids)
	}
	if m.Revision != rev {
		t.Errorf("List Revision = %d, want %d", m.Revision, rev)
	}

	m, err = registry.List(ctx, cli, "/empty")
	if err != nil || len(m.Members) != 0 {
		t.Errorf("List of an empty prefix = %+v, %v", m, err)
	}
}

func TestListFailsWhenEtcdIsDown(t *testing.T) {
	srv := etcdtest.Start(t, embedetcd.Config{})
	cli := newClient(t, srv.Endpoint())
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := registry.List(ctx, cli, "/mp")
	if err == nil {
		t.Fatal("List with etcd down returned no error")
	}
	if want := "registry: cannot list /mp/nodes/: "; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("List error %q, want it to start with %q", err, want)
	}
}
