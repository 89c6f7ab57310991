package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/registry"
)

// checkClusterName reads the live members and refuses to start (returns an
// error) when one of them has another cluster name: this node's NATS
// server could not route to theirs, and as master it would answer no one.
// A record without a cluster name (an older version) is of any cluster. It
// retries while etcd does not answer, and returns nil when ctx ends.
//
// Two nodes of different names that start at the same moment may both pass;
// the registry then leaves the other's record out of each membership.
func (n *Node) checkClusterName(ctx context.Context, cli *clientv3.Client, log *slog.Logger) error {
	backoff := 100 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(ctx, min(n.cfg.TTL/2, 5*time.Second))
		mem, err := registry.List(rctx, cli, n.cfg.Prefix)
		cancel()
		if err == nil {
			for _, r := range mem.Members {
				if r.Cluster != "" && r.Cluster != n.cfg.ClusterName {
					return fmt.Errorf("node: cluster name %q, but node %s under prefix %s has cluster name %q: "+
						"start with --cluster-name %s to join it, or use another --prefix for a cluster of your own",
						n.cfg.ClusterName, r.ID, n.cfg.Prefix, r.Cluster, r.Cluster)
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("etcd unreachable, retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
