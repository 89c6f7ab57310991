package main

import (
	"context"
	"fmt"

	"github.com/meshpool/meshpool/message"
)

// replicatedName is the JetStream table's line of meshpool on a 3-member
// etcd, set beside JetStream R3.
const replicatedName = "meshpool durable: etcd, 3 members, data in /dev/shm"

// replicatedMeasure measures meshpool durable beside JetStream R3: three
// etcd members (see startEtcdMembers), a fresh 3-node cluster on them, the
// durable load of the throughput group with its CPU per task (etcd's that
// of all three members), then the sequential durable latency. It stops
// every process it started.
func replicatedMeasure(ctx context.Context, e *env, cfg config) (loadResult, latencies, error) {
	m, err := e.startEtcdMembers(ctx, 3)
	if err != nil {
		return loadResult{}, latencies{}, err
	}
	defer m.close()
	cl, err := e.newClusterOn(ctx, m, 3)
	if err != nil {
		return loadResult{}, latencies{}, err
	}
	defer cl.close()
	ro, err := cl.roles(ctx)
	if err != nil {
		return loadResult{}, latencies{}, err
	}
	d, err := durableLoad(ctx, ro, cfg, cfg.durableN, "")
	if err != nil {
		return loadResult{}, latencies{}, err
	}
	lat, err := submitLatency(ctx, ro.worker, cfg.latency, message.DurabilityDurable, "")
	if err != nil {
		return loadResult{}, latencies{}, fmt.Errorf("latency: %w", err)
	}
	return d, lat, nil
}
