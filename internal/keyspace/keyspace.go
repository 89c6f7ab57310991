// Package keyspace is the cluster's etcd key layout, in one place, and the
// rules every component applies to the prefix and the lease TTL, so that the
// registry, the election, the task store and the node accept and refuse
// exactly the same values. Under a prefix like /meshpool:
//
//	<prefix>/nodes/<node ID>       a node's record, under its lease (registry)
//	<prefix>/election/<lease hex>  a candidate's key, under its session (election)
//	<prefix>/tasks/<uuid>          a task's record (taskstore)
//	<prefix>/schedules/<name>      a recurring task's schedule (schedule)
//
// Nothing else is written under the prefix.
package keyspace

import (
	"fmt"
	"strings"
	"time"
)

// Defaults shared by every component.
const (
	DefaultPrefix = "/meshpool"
	DefaultTTL    = 10 * time.Second
	MinTTL        = 2 * time.Second
	// MaxLeaseTTL is the longest lease etcd grants, 9,000,000,000 s
	// (go.etcd.io/etcd/server/v3/lease.MaxLeaseTTL); a longer grant fails
	// with "etcdserver: too large lease TTL".
	MaxLeaseTTL = 9_000_000_000 * time.Second
)

// Nodes is the prefix of every node's record.
func Nodes(prefix string) string { return prefix + "/nodes/" }

// Node is the key of node id's record.
func Node(prefix, id string) string { return Nodes(prefix) + id }

// Election is the election's prefix; candidates' keys are below it, after a '/'.
func Election(prefix string) string { return prefix + "/election" }

// Tasks is the prefix of every task's record.
func Tasks(prefix string) string { return prefix + "/tasks/" }

// Task is the key of task uuid's record.
func Task(prefix, uuid string) string { return Tasks(prefix) + uuid }

// Schedules is the prefix of every schedule's record.
func Schedules(prefix string) string { return prefix + "/schedules/" }

// Schedule is the key of the schedule called name.
func Schedule(prefix, name string) string { return Schedules(prefix) + name }

// CheckPrefix accepts a path like /meshpool: a leading '/', no trailing '/'.
func CheckPrefix(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("prefix must start with '/', got %q", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("prefix must not end with '/', got %q", p)
	}
	return nil
}

// CheckTTL accepts whole seconds, at least MinTTL and at most MaxLeaseTTL:
// etcd leases count in seconds, a shorter TTL leaves no room for a
// keep-alive round trip, and etcd refuses a longer one.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < MinTTL:
		return fmt.Errorf("ttl must be at least %s, got %s", MinTTL, ttl)
	case ttl > MaxLeaseTTL:
		return fmt.Errorf("ttl must be at most %s (etcd's longest lease), got %s", MaxLeaseTTL, ttl)
	case ttl%time.Second != 0:
		return fmt.Errorf("ttl must be whole seconds, got %s", ttl)
	}
	return nil
}
