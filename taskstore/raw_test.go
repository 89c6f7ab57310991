package taskstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/taskstore"
)

func TestPutValueDelete(t *testing.T) {
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(time.Minute))
	key := keyspace.Schedule(prefix, "nightly")
	value := func() (string, bool) {
		t.Helper()
		resp, err := cli.Get(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return "", false
		}
		return string(resp.Kvs[0].Value), true
	}
	for _, v := range []string{`{"a":1}`, `{"a":2}`} {
		if err := w.PutValue(t.Context(), key, v); err != nil {
			t.Fatal(err)
		}
		if got, ok := value(); !ok || got != v {
			t.Fatalf("after PutValue(%s): %q, present %t", v, got, ok)
		}
	}
	if err := w.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if got, ok := value(); ok {
		t.Fatalf("after Delete: %q still there", got)
	}
	if err := w.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
}

func TestPutValueRefusesKey(t *testing.T) {
	_, cli := newEtcd(t)
	w := startWriter(t, cli, newFence(t, cli), options(time.Minute))
	for _, key := range []string{
		"/other/schedules/a",
		"/meshpoolx/schedules/a", // the prefix is a path
		"/meshpool",
		"/meshpool/",
		"",
		keyspace.Task(prefix, pending(1).UUID), // Put and Complete write tasks
	} {
		t.Run(key, func(t *testing.T) {
			for name, err := range map[string]error{
				"PutValue": w.PutValue(t.Context(), key, "v"),
				"Delete":   w.Delete(t.Context(), key),
			} {
				if !errors.Is(err, taskstore.ErrInvalidKey) {
					t.Errorf("%s(%q): %v, want ErrInvalidKey", name, key, err)
				}
			}
		})
	}
	if s := w.Stats(); s.Txns != 0 {
		t.Errorf("%d txns sent for refused keys", s.Txns)
	}
}

// A deposed master's schedule writes fail and change nothing, like its
// task writes.
func TestPutValueFenced(t *testing.T) {
	_, cli := newEtcd(t)
	key := keyspace.Schedule(prefix, "nightly")
	if _, err := cli.Put(t.Context(), key, "before"); err != nil {
		t.Fatal(err)
	}
	stale := newFence(t, cli)
	stale.Term-- // a term that is over
	w := startWriter(t, cli, stale, options(time.Minute))
	if err := w.PutValue(t.Context(), key, "after"); !errors.Is(err, taskstore.ErrFenced) {
		t.Fatalf("PutValue of a stale term: %v, want ErrFenced", err)
	}
	if err := w.Delete(t.Context(), key); !errors.Is(err, taskstore.ErrFenced) {
		t.Fatalf("Delete of a stale term: %v, want ErrFenced", err)
	}
	resp, err := cli.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("after fenced writes: %v, want the key unchanged", resp.Kvs)
	}
}
