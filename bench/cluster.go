package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/node"
)

const (
	etcdClientURL = "http://127.0.0.1:23790"
	etcdPeerURL   = "http://127.0.0.1:23800"
	etcdEndpoint  = "127.0.0.1:23790"
	readyTimeout  = 30 * time.Second
)

// proc is one child process in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tail
	done chan struct{}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot signal %s: %w", p.name, err)
	}
	return nil
}

// stop sends sig and waits for the exit, killing the group after timeout.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	_ = p.signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// tail keeps the last bytes a process wrote, to show when it fails.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// env owns every process and the etcd data dir of one benchmark run.
type env struct {
	binary  string
	dir     string
	mu      sync.Mutex
	procs   []*proc
	etcd    *proc
	cli     *clientv3.Client
	nextIP  int
	cluster int
	http    *http.Client
}

func newEnv(binary string) (*env, error) {
	dir, err := os.MkdirTemp("/dev/shm", "meshpool-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot make the etcd data dir: %w", err)
	}
	return &env{binary: binary, dir: dir, nextIP: 10, http: &http.Client{Timeout: time.Second}}, nil
}

// start runs a process in its own process group.
func (e *env) start(name, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, out: &tail{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// close kills every process group still running and removes the data dir.
func (e *env) close() {
	if e.cli != nil {
		_ = e.cli.Close()
	}
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	for _, p := range procs {
		p.stop(syscall.SIGKILL, 5*time.Second)
	}
	if err := os.RemoveAll(e.dir); err != nil {
		progress("cannot remove %s: %v", e.dir, err)
	}
}

// startEtcd runs one etcd member on 127.0.0.1 and waits for /health.
func (e *env) startEtcd(ctx context.Context) error {
	p, err := e.start("etcd", "etcd", "--name", "bench", "--data-dir", e.dir+"/etcd",
		"--listen-client-urls", etcdClientURL, "--advertise-client-urls", etcdClientURL,
		"--listen-peer-urls", etcdPeerURL, "--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", "bench="+etcdPeerURL, "--log-level", "error", "--logger", "zap")
	if err != nil {
		return err
	}
	e.etcd = p
	if err := poll(ctx, readyTimeout, 20*time.Millisecond, func() bool { return e.get(ctx, etcdClientURL+"/health") == http.StatusOK }); err != nil {
		return fmt.Errorf("etcd not healthy: %w\n%s", err, p.out.String())
	}
	cli, err := etcdclient.New([]string{etcdEndpoint}, 5*time.Second)
	if err != nil {
		return fmt.Errorf("cannot connect to etcd: %w", err)
	}
	e.cli = cli
	return nil
}

// get returns the status code of GET url, 0 on error.
func (e *env) get(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// bnode is one meshpool node process.
type bnode struct {
	ip string
	id string
	p  *proc
}

func (n *bnode) url(path string) string { return "http://" + n.ip + ":8222" + path }
func (n *bnode) natsURL() string        { return "nats://" + n.ip + ":4222" }

// cluster is a set of nodes under their own etcd prefix.
type cluster struct {
	env    *env
	prefix string
	nodes  []*bnode
}

// newCluster starts n nodes on fresh 127.0.0.x addresses and waits until
// every one is ready.
func (e *env) newCluster(ctx context.Context, n int) (*cluster, error) {
	e.cluster++
	c := &cluster{env: e, prefix: fmt.Sprintf("/bench/c%d", e.cluster)}
	for range n {
		if _, err := c.addNode(); err != nil {
			c.close()
			return nil, err
		}
	}
	for _, nd := range c.nodes {
		if err := c.waitReady(ctx, nd); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// addNode starts one more node and returns at once.
func (c *cluster) addNode() (*bnode, error) {
	e := c.env
	ip := fmt.Sprintf("127.0.0.%d", e.nextIP)
	e.nextIP++
	if e.nextIP > 250 {
		return nil, errors.New("out of 127.0.0.x addresses")
	}
	p, err := e.start("node "+ip, e.binary, "node", "--etcd", etcdEndpoint, "--advertise", ip,
		"--name", fmt.Sprintf("b%d", e.nextIP-1), "--prefix", c.prefix,
		"--task-interval", "0", "--work-time", "0s", "--ttl", "3s", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	nd := &bnode{ip: ip, p: p}
	c.nodes = append(c.nodes, nd)
	return nd, nil
}

// waitReady polls /readyz until 200, then learns the node's ID.
func (c *cluster) waitReady(ctx context.Context, nd *bnode) error {
	err := poll(ctx, readyTimeout, 10*time.Millisecond, func() bool {
		return c.env.get(ctx, nd.url("/readyz")) == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("node %s not ready: %w\n%s", nd.ip, err, nd.p.out.String())
	}
	st, err := c.env.status(ctx, nd)
	if err != nil {
		return err
	}
	nd.id = st.ID
	return nil
}

// status reads a node's /status.
func (e *env) status(ctx context.Context, nd *bnode) (node.Status, error) {
	var st node.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nd.url("/status"), nil)
	if err != nil {
		return st, fmt.Errorf("cannot ask %s for /status: %w", nd.ip, err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("cannot ask %s for /status: %w", nd.ip, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("cannot read %s's /status: %w", nd.ip, err)
	}
	return st, nil
}

// master returns the master node, one other node, and the term.
func (c *cluster) master(ctx context.Context) (master, worker *bnode, term int64, err error) {
	l, err := election.CurrentLeader(ctx, c.env.cli, c.prefix)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, nd := range c.nodes {
		if nd.id == l.ID {
			master = nd
		} else if worker == nil && nd.id != "" {
			worker = nd
		}
	}
	if master == nil || worker == nil {
		return nil, nil, 0, fmt.Errorf("no master (%q) or no worker among the cluster's nodes", l.ID)
	}
	return master, worker, l.Term, nil
}

// close kills every node of the cluster.
func (c *cluster) close() {
	for _, nd := range c.nodes {
		nd.p.stop(syscall.SIGKILL, 5*time.Second)
	}
}

// poll calls cond every interval until it is true or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		case <-time.After(interval):
		}
	}
}
