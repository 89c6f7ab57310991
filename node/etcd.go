package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/keyspace"
)

// connectEtcd opens the etcd client and makes a first request, so that a
// wrong certificate or password stops the node at once with a clear error.
// An etcd that does not answer is not an error: the node starts and its
// components retry (with a user, clientv3 must authenticate first, so
// Connect waits for etcd). It returns nil, nil if ctx ends first.
func (n *Node) connectEtcd(ctx context.Context, log *slog.Logger) (*clientv3.Client, error) {
	cli, err := etcdclient.Connect(ctx, n.cfg.etcdOptions(), keyspace.Nodes(n.cfg.Prefix), log.With("component", "cluster"))
	switch {
	case err == nil:
		return cli, nil
	case errors.Is(err, etcdclient.ErrUnreachable) && cli != nil:
		log.Warn("etcd unreachable, starting anyway and retrying", "err", err)
		return cli, nil
	case ctx.Err() != nil:
		return nil, nil
	}
	return nil, fmt.Errorf("node: %w", err)
}
