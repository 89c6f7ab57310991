// Package etcdclient builds the etcd client every meshpool component shares,
// with the settings that make an outage short: dead connections are noticed
// by keep-alive pings, and reconnection is retried every couple of seconds
// rather than gRPC's default back-off, which grows to two minutes.
package etcdclient

import (
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// New returns a client for endpoints (host:port). It does not wait for a
// connection: the first request does, within its own context.
func New(endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
		// The client's own log is chatty and says nothing our components
		// do not log themselves, with context, when a request fails.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}
