package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdclient"
)

// etcdMembers is an etcd cluster of several members that a group starts
// beside the env's single member, each member a process on an address of
// its own with its data in /dev/shm.
type etcdMembers struct {
	procs     []*proc
	dirs      []string
	endpoints []string // host:port of each member's client URL
	urls      []string // client URLs, which also serve /health and /metrics
	cli       *clientv3.Client
}

// The members' ports, each on its own address (see membersAddrs).
const memberClientPort, memberPeerPort = 2379, 2380

// membersAddrs returns n addresses 127.0.254.Y, Y from 250, on which both
// ports are free. The meshpool nodes take 127.0.X.Y with Y from 10 to 249
// (see env.addr), JetStream 127.0.255.x, the tests 127.0.0.x.
func membersAddrs(n int) ([]string, error) {
	var ips []string
	for y := 250; y < 255 && len(ips) < n; y++ {
		ip := fmt.Sprintf("127.0.254.%d", y)
		if portsFree(ip, memberClientPort, memberPeerPort) {
			ips = append(ips, ip)
		}
	}
	if len(ips) < n {
		return nil, fmt.Errorf("no %d addresses 127.0.254.250-254 with ports %d and %d free", n, memberClientPort, memberPeerPort)
	}
	return ips, nil
}

// startEtcdMembers starts an etcd cluster of n members on empty data dirs
// in /dev/shm and waits until every member is healthy. The caller closes it.
func (e *env) startEtcdMembers(ctx context.Context, n int) (*etcdMembers, error) {
	ips, err := membersAddrs(n)
	if err != nil {
		return nil, err
	}
	m := &etcdMembers{}
	var initial []string
	for i, ip := range ips {
		initial = append(initial, fmt.Sprintf("m%d=http://%s:%d", i, ip, memberPeerPort))
	}
	for i, ip := range ips {
		dir, err := os.MkdirTemp(e.dir, "member-")
		if err != nil {
			m.close()
			return nil, fmt.Errorf("cannot make an etcd member's data dir: %w", err)
		}
		m.dirs = append(m.dirs, dir)
		client := fmt.Sprintf("http://%s:%d", ip, memberClientPort)
		peer := fmt.Sprintf("http://%s:%d", ip, memberPeerPort)
		p, err := e.start(fmt.Sprintf("etcd member %d", i), "etcd", "--name", fmt.Sprintf("m%d", i), "--data-dir", dir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--log-level", "error", "--logger", "zap")
		if err != nil {
			m.close()
			return nil, err
		}
		m.procs = append(m.procs, p)
		m.endpoints, m.urls = append(m.endpoints, fmt.Sprintf("%s:%d", ip, memberClientPort)), append(m.urls, client)
	}
	for i, u := range m.urls {
		if err := poll(ctx, readyTimeout, 20*time.Millisecond, func() bool { return e.get(ctx, u+"/health") == http.StatusOK }); err != nil {
			out := m.procs[i].out.String()
			m.close()
			return nil, fmt.Errorf("etcd member %d not healthy: %w\n%s", i, err, out)
		}
	}
	if m.cli, err = etcdclient.New(m.endpoints, 5*time.Second); err != nil {
		m.close()
		return nil, fmt.Errorf("cannot connect to the etcd members: %w", err)
	}
	return m, nil
}

// close stops every member and removes their data.
func (m *etcdMembers) close() {
	if m.cli != nil {
		_ = m.cli.Close()
	}
	for _, p := range m.procs {
		p.stop(syscall.SIGKILL, 5*time.Second)
	}
	for _, d := range m.dirs {
		_ = os.RemoveAll(d)
	}
}

// pids are the members' process ids.
func (m *etcdMembers) pids() []int {
	var ps []int
	for _, p := range m.procs {
		ps = append(ps, p.pid())
	}
	return ps
}

// counts sums every member's grpc_server_msg_received_total: each counts
// the requests its own clients sent it.
func (m *etcdMembers) counts(ctx context.Context, e *env) (grpcCounts, error) {
	sum := grpcCounts{}
	for _, u := range m.urls {
		c, err := e.countsAt(ctx, u)
		if err != nil {
			return nil, err
		}
		for k, v := range c {
			sum[k] += v
		}
	}
	if len(sum) == 0 {
		return nil, errors.New("the etcd members' /metrics have no grpc_server_msg_received_total")
	}
	return sum, nil
}
