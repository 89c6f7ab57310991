package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/node"
)

const readyTimeout = 60 * time.Second

// proc is one child process in its own process group.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out      *tail
	done     chan struct{}
	stopping atomic.Bool // set by stop: an exit is expected
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot signal %s: %w", p.name, err)
	}
	return nil
}

// stop sends sig and waits for the exit, killing the group after timeout.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	p.stopping.Store(true)
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
	binary       string
	dir          string
	dataDir      string // etcd's data dir when not under dir (see etcdDir)
	mu           sync.Mutex
	procs        []*proc
	etcd         *proc
	etcdURL      string // client URL, also serves /health and /metrics
	etcdEndpoint string // host:port of the client URL
	cli          *clientv3.Client
	nextIP       int // index of the next address to try, see addr
	names        int // nodes started, for their names
	cluster      int
	http         *http.Client
	closing      atomic.Bool // set by close: processes exit now
}

func newEnv(binary string) (*env, error) {
	dir, err := os.MkdirTemp("/dev/shm", "meshpool-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot make the etcd data dir: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1000, 4
	return &env{binary: binary, dir: dir, http: &http.Client{Timeout: 2 * time.Second, Transport: tr}}, nil
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
	e.closing.Store(true)
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

// portsFree reports whether nothing listens on ip at any of ports. The
// machine is shared: other people's clusters may hold an address.
func portsFree(ip string, ports ...int) bool {
	for _, port := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// startEtcd runs one etcd member on 127.0.0.1 and waits for /health. The
// ports are the first free pair from 23790/23800 up.
func (e *env) startEtcd(ctx context.Context) error {
	client := 0
	for port := 23790; port < 23990; port += 20 {
		if portsFree("127.0.0.1", port, port+10) {
			client = port
			break
		}
	}
	if client == 0 {
		return errors.New("no free port pair for etcd between 23790 and 23990")
	}
	e.etcdEndpoint = fmt.Sprintf("127.0.0.1:%d", client)
	e.etcdURL = "http://" + e.etcdEndpoint
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", client+10)
	p, err := e.start("etcd", "etcd", "--name", "bench", "--data-dir", e.etcdDir(),
		"--listen-client-urls", e.etcdURL, "--advertise-client-urls", e.etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "bench="+peerURL, "--log-level", "error", "--logger", "zap", "--enable-pprof")
	if err != nil {
		return err
	}
	e.etcd = p
	go func() {
		<-p.done
		if !p.stopping.Load() && !e.closing.Load() {
			progress("etcd exited during the run: %s\n%s", p.cmd.ProcessState, p.out.String())
		}
	}()
	if err := poll(ctx, readyTimeout, 20*time.Millisecond, func() bool { return e.get(ctx, e.etcdURL+"/health") == http.StatusOK }); err != nil {
		return fmt.Errorf("etcd not healthy: %w\n%s", err, p.out.String())
	}
	cli, err := etcdclient.New([]string{e.etcdEndpoint}, 5*time.Second)
	if err != nil {
		return fmt.Errorf("cannot connect to etcd: %w", err)
	}
	e.cli = cli
	return nil
}

// restartEtcd replaces etcd with a fresh member on an empty data dir, so
// that what follows does not carry the history (and the memory) of what
// came before.
func (e *env) restartEtcd(ctx context.Context) error {
	return e.restartEtcdIn(ctx, e.dir+"/etcd")
}

// restartEtcdIn stops etcd and starts a fresh one with its data in dir.
func (e *env) restartEtcdIn(ctx context.Context, dir string) error {
	if e.cli != nil {
		_ = e.cli.Close()
		e.cli = nil
	}
	e.etcd.stop(syscall.SIGTERM, 10*time.Second)
	if err := os.RemoveAll(e.etcdDir()); err != nil {
		return fmt.Errorf("cannot remove the etcd data dir: %w", err)
	}
	e.dataDir = dir
	return e.startEtcd(ctx)
}

// etcdDir is etcd's data dir: in /dev/shm unless a group chose another.
func (e *env) etcdDir() string {
	if e.dataDir != "" {
		return e.dataDir
	}
	return e.dir + "/etcd"
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

// getJSON decodes the JSON answer of GET url into v.
func (e *env) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("cannot ask %s: %w", url, err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot ask %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("cannot read the answer of %s: %w", url, err)
	}
	return nil
}

// addr returns the next 127.0.X.Y (X from 1, Y from 10 to 249) on which
// none of a node's ports is taken. 127.0.0.x is left to the tests and the
// other clusters people run on this machine.
func (e *env) addr() (string, error) {
	for {
		i := e.nextIP
		e.nextIP++
		ip := fmt.Sprintf("127.0.%d.%d", 1+i/240, 10+i%240)
		if 1+i/240 > 254 {
			return "", errors.New("out of 127.0.X.Y addresses")
		}
		if portsFree(ip, 4222, 6222, 8222) {
			return ip, nil
		}
	}
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
	etcd   *etcdMembers // the etcd the nodes use; nil: the env's
	prefix string
	args   []string // given to every node after the common flags
	nodes  []*bnode
}

// newCluster starts n nodes on fresh addresses, each with args after the
// common flags, and waits until every one is ready.
func (e *env) newCluster(ctx context.Context, n int, args ...string) (*cluster, error) {
	return e.newClusterOn(ctx, nil, n, args...)
}

// newClusterOn is newCluster with the nodes on the etcd members m (nil:
// the env's etcd).
func (e *env) newClusterOn(ctx context.Context, m *etcdMembers, n int, args ...string) (*cluster, error) {
	c := e.emptyCluster()
	c.etcd, c.args = m, args
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

// emptyCluster is a cluster with a prefix of its own and no nodes yet.
func (e *env) emptyCluster() *cluster {
	e.cluster++
	return &cluster{env: e, prefix: fmt.Sprintf("/bench/c%d", e.cluster)}
}

// addNode starts one more node and returns at once.
func (c *cluster) addNode() (*bnode, error) {
	e := c.env
	ip, err := e.addr()
	if err != nil {
		return nil, err
	}
	e.names++
	args := append([]string{"node", "--etcd", c.etcdEndpoints(), "--advertise", ip,
		"--name", fmt.Sprintf("b%d", e.names), "--prefix", c.prefix,
		"--task-interval", "0", "--work-time", "0s", "--ttl", "3s", "--log-level", "warn", "--slots", "256"}, c.args...)
	p, err := e.start("node "+ip, e.binary, args...)
	if err != nil {
		return nil, err
	}
	nd := &bnode{ip: ip, p: p}
	c.nodes = append(c.nodes, nd)
	return nd, nil
}

// remove stops nd with sig (waiting for its exit) and forgets it.
func (c *cluster) remove(nd *bnode, sig syscall.Signal) {
	nd.p.stop(sig, 10*time.Second)
	c.nodes = slices.DeleteFunc(c.nodes, func(x *bnode) bool { return x == nd })
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
	err := e.getJSON(ctx, nd.url("/status"), &st)
	return st, err
}

// routez is the part of a node's /nats/routez the scale rows use.
type routez struct {
	NumRoutes int `json:"num_routes"`
	Routes    []struct {
		RemoteName string `json:"remote_name"`
	} `json:"routes"`
}

// master returns the master node, one other node, and the term.
func (c *cluster) master(ctx context.Context) (master, worker *bnode, term int64, err error) {
	l, err := election.CurrentLeader(ctx, c.etcdClient(), c.prefix)
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

// etcdEndpoints is the nodes' --etcd.
func (c *cluster) etcdEndpoints() string {
	if c.etcd != nil {
		return strings.Join(c.etcd.endpoints, ",")
	}
	return c.env.etcdEndpoint
}

// etcdClient is a client of the nodes' etcd.
func (c *cluster) etcdClient() *clientv3.Client {
	if c.etcd != nil {
		return c.etcd.cli
	}
	return c.env.cli
}

// etcdPids are the process ids of the nodes' etcd members.
func (c *cluster) etcdPids() []int {
	if c.etcd != nil {
		return c.etcd.pids()
	}
	return []int{c.env.etcd.pid()}
}

// etcdCounts reads the requests the nodes' etcd received (see grpcCounts).
func (c *cluster) etcdCounts(ctx context.Context) (grpcCounts, error) {
	if c.etcd != nil {
		return c.etcd.counts(ctx, c.env)
	}
	return c.env.etcdCounts(ctx)
}

// close kills every node of the cluster.
func (c *cluster) close() {
	for _, nd := range c.nodes {
		_ = nd.p.signal(syscall.SIGKILL)
	}
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

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-time.After(d):
		return nil
	}
}
