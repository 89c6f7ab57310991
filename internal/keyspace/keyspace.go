// Package keyspace holds the rules every component applies to the cluster's
// etcd prefix and lease TTL, so that the registry, the election and the node
// accept and refuse exactly the same values.
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
)

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

// CheckTTL accepts whole seconds, at least MinTTL: etcd leases count in
// seconds, and a shorter TTL leaves no room for a keep-alive round trip.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < MinTTL:
		return fmt.Errorf("ttl must be at least %s, got %s", MinTTL, ttl)
	case ttl%time.Second != 0:
		return fmt.Errorf("ttl must be whole seconds, got %s", ttl)
	}
	return nil
}
