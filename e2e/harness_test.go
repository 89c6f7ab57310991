package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

var binary string // the meshpool binary built once for all tests

func TestMain(m *testing.M) {
	if os.Getenv("MESHPOOL_E2E") == "" {
		fmt.Println("e2e: skipped; set MESHPOOL_E2E=1 (make test does) to run against a real etcd process")
		os.Exit(0)
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: MESHPOOL_E2E=1 but no etcd on PATH; build it: go build -o bin/etcd ./internal/cmd/etcd, and put bin first on PATH (make test does)")
		os.Exit(1)
	}
	// etcd 3.4 and 3.5 skip permission checks under the NOSPACE alarm: the
	// secure tests prove nothing against them.
	if v, err := etcdVersion(); err != nil || !atLeast36(v) {
		fmt.Fprintf(os.Stderr, "e2e: the etcd on PATH is %q (%v); want 3.6 or later: go build -o bin/etcd ./internal/cmd/etcd, and put bin first on PATH (make test does)\n", v, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "meshpool-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "meshpool")
	build := exec.Command("go", "build", "-o", binary, "github.com/meshpool/meshpool/cmd/meshpool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build meshpool:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a child process whose output is kept for the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || testing.Verbose() && os.Getenv("MESHPOOL_E2E_LOGS") != "" {
			t.Logf("--- output of %s ---\n%s", name, tail(p.out.String(), 12000))
		}
		if dir := os.Getenv("MESHPOOL_E2E_LOGDIR"); dir != "" {
			file := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name() + "." + name + ".log")
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, file), []byte(p.out.String()), 0o644)
		}
	})
	return p
}

// etcdVersion is the version the etcd on PATH reports, e.g. "3.7.3".
func etcdVersion() (string, error) {
	out, err := exec.Command("etcd", "--version").Output()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no version in %q", out)
}

// atLeast36 reports whether version v (major.minor.patch) is 3.6 or later.
func atLeast36(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 3 || major == 3 && minor >= 6
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// etcdProc is a real single-member etcd server process on 127.0.0.1 that
// can be stopped and started again on the same data and ports.
type etcdProc struct {
	t               *testing.T
	dir, curl, purl string
	endpoint        string
	proc            *proc
	starts          int
}

// startEtcd runs a real single-member etcd server process on 127.0.0.1.
func startEtcd(t *testing.T) string { return newEtcd(t).endpoint }

func newEtcd(t *testing.T) *etcdProc {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		// etcd fsyncs every write; memory-backed storage keeps tests fast.
		if d, err := os.MkdirTemp("/dev/shm", "meshpool-e2e-etcd-"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	e := &etcdProc{t: t, dir: dir}
	// The ports are free when picked but another test package running in
	// parallel may take one before etcd binds it: then pick again.
	for attempt := 1; ; attempt++ {
		cport, pport := testutil.FreePort(t, "127.0.0.1"), testutil.FreePort(t, "127.0.0.1")
		e.curl = fmt.Sprintf("http://127.0.0.1:%d", cport)
		e.purl = fmt.Sprintf("http://127.0.0.1:%d", pport)
		e.endpoint = fmt.Sprintf("127.0.0.1:%d", cport)
		if e.launch() || attempt == 3 {
			break
		}
	}
	e.waitHealthy()
	return e
}

// start runs etcd again on the same data and ports.
func (e *etcdProc) start() {
	e.t.Helper()
	e.launch()
	e.waitHealthy()
}

// launch starts the process; false if it exited at once because a port was
// taken.
func (e *etcdProc) launch() bool {
	e.starts++
	e.proc = start(e.t, fmt.Sprintf("etcd#%d", e.starts), "etcd", "--name", "e2e", "--data-dir", e.dir,
		"--listen-client-urls", e.curl, "--advertise-client-urls", e.curl,
		"--listen-peer-urls", e.purl, "--initial-advertise-peer-urls", e.purl,
		"--initial-cluster", "e2e="+e.purl, "--log-level", "error", "--logger", "zap")
	select {
	case <-e.proc.done:
		return !strings.Contains(e.proc.out.String(), "address already in use")
	case <-time.After(300 * time.Millisecond):
		return true
	}
}

func (e *etcdProc) waitHealthy() {
	e.t.Helper()
	testutil.Eventually(e.t, 20*time.Second, "etcd serves /health", func() bool {
		resp, err := http.Get(e.curl + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startEtcdCluster runs a three-member etcd cluster on 127.0.0.1 and returns
// its members; each member's endpoint is its client address.
func startEtcdCluster(t *testing.T) []*etcdProc {
	t.Helper()
	members := make([]*etcdProc, 3)
	var peers []string
	for i := range members {
		dir, err := os.MkdirTemp("/dev/shm", "meshpool-e2e-etcd3-")
		if err != nil {
			dir = t.TempDir()
		} else {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		// Fixed ports below the ephemeral range (32768+), where the test
		// packages running in parallel bind random ports; 23980-23985 are
		// used by no other test.
		cport, pport := 23980+2*i, 23981+2*i
		members[i] = &etcdProc{t: t, dir: dir,
			curl:     fmt.Sprintf("http://127.0.0.1:%d", cport),
			purl:     fmt.Sprintf("http://127.0.0.1:%d", pport),
			endpoint: fmt.Sprintf("127.0.0.1:%d", cport),
		}
		peers = append(peers, fmt.Sprintf("m%d=%s", i, members[i].purl))
	}
	for i, e := range members {
		e.proc = start(t, fmt.Sprintf("etcd member m%d", i), "etcd", "--name", fmt.Sprintf("m%d", i), "--data-dir", e.dir,
			"--listen-client-urls", e.curl, "--advertise-client-urls", e.curl,
			"--listen-peer-urls", e.purl, "--initial-advertise-peer-urls", e.purl,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--log-level", "error", "--logger", "zap")
	}
	for _, e := range members {
		testutil.Eventually(t, 30*time.Second, "etcd member serves /health", func() bool {
			resp, err := http.Get(e.curl + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return members
}

// stop ends the etcd process (SIGTERM) and waits for it.
func (e *etcdProc) stop() {
	e.proc.signal(syscall.SIGTERM)
	e.proc.wait(e.t, 20*time.Second)
}

// run runs the binary to completion and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "MESHPOOL_ETCD=", "MESHPOOL_PREFIX=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("meshpool %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// record is the part of a node record the tests read.
type record struct {
	ID        string `json:"id"`
	IP        string `json:"ip"`
	ClientURL string `json:"client_url"`
	HTTPURL   string `json:"http_url"`
}

type clusterStatus struct {
	Master  *record  `json:"master"`
	Term    int64    `json:"term"`
	Members []record `json:"members"`
}

func status(t *testing.T, etcd, prefix string) (clusterStatus, bool) {
	t.Helper()
	out, _, code := run(t, "status", "--etcd", etcd, "--prefix", prefix, "--json", "--timeout", "3s")
	var s clusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		return s, false
	}
	return s, true
}

// nodeStatus is the part of a node's /status the tests read.
type nodeStatus struct {
	ID       string   `json:"id"`
	Routes   []string `json:"routes"`
	IsMaster bool     `json:"is_master"`
	Members  []record `json:"members"`
	Master   struct {
		ID   string `json:"id"`
		Term int64  `json:"term"`
	} `json:"master"`
}

func httpStatus(url string) (nodeStatus, error) {
	var s nodeStatus
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// httpWorkerInFlight reads worker.in_flight from a node's /status.
func httpWorkerInFlight(hc *http.Client, url string) (int64, error) {
	var s struct {
		Worker struct {
			InFlight int64 `json:"in_flight"`
		} `json:"worker"`
	}
	return s.Worker.InFlight, getJSONWith(hc, url+"/status", &s)
}

// httpCounters reads the suppressed-duplicate counters from a node's /status.
func httpCounters(hc *http.Client, url string) (int64, error) {
	var s struct {
		Worker struct {
			Redelivered int64 `json:"redelivered"`
		} `json:"worker"`
		Dispatch struct {
			DupResults int64 `json:"duplicate_results_suppressed"`
		} `json:"dispatch"`
	}
	err := getJSONWith(hc, url+"/status", &s)
	return s.Worker.Redelivered + s.Dispatch.DupResults, err
}

func getJSONWith(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
