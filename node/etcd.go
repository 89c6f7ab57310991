package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
		n.checkEtcdVersion(ctx, cli, log)
		return cli, nil
	case errors.Is(err, etcdclient.ErrUnreachable) && cli != nil:
		log.Warn("etcd unreachable, starting anyway and retrying", "err", err)
		return cli, nil
	case ctx.Err() != nil:
		return nil, nil
	}
	return nil, fmt.Errorf("node: %w", err)
}

// checkEtcdVersion says loudly when an etcd member runs a version whose
// permission checks a full database switches off.
func (n *Node) checkEtcdVersion(ctx context.Context, cli *clientv3.Client, log *slog.Logger) {
	for _, ep := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil {
			continue
		}
		if problem := etcdVersionProblem(st.Version, n.cfg.EtcdUser != ""); problem != "" {
			log.Error(problem, "endpoint", ep, "etcd_version", st.Version)
		}
	}
}

// etcdVersionProblem says what is wrong with etcd version v for a cluster
// that relies on etcd's authentication (auth), or "".
func etcdVersionProblem(v string, auth bool) string {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil || !auth || major > 3 || major == 3 && minor >= 6 {
		return ""
	}
	return "etcd " + v + " skips its permission checks while its NOSPACE alarm is raised (fixed in etcd 3.6): " +
		"whoever holds the nodes' etcd credentials can then fill it and act as etcd's root; upgrade etcd to 3.6 or later " +
		"(go build -o bin/etcd ./internal/cmd/etcd builds the version meshpool is tested with)"
}
