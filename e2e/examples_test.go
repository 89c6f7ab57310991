package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// exampleResult is the part of a result the examples print.
type exampleResult struct {
	UUID     string          `json:"uuid"`
	Executor string          `json:"executor"`
	Kind     string          `json:"kind"`
	Result   json.RawMessage `json:"result"`
	Error    string          `json:"error"`
}

// The examples in examples/ work as their comments and examples/README.md
// say, against a cluster of two stock nodes running the shell handler and
// the Go example worker: submitted by meshpool submit, the nats CLI and the
// JavaScript client.
func TestExamples(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goworker := filepath.Join(t.TempDir(), "goworker")
	build := exec.Command("go", "build", "-o", goworker, "./examples/goworker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build examples/goworker: %v\n%s", err, out)
	}

	etcd := startEtcd(t)
	// The goworker has no --prefix flag: the stock nodes use its default.
	const prefix, workerIP = "/meshpool", "127.0.0.32"
	nodeIPs := []string{"127.0.0.33", "127.0.0.34"}
	sha := "sha256=" + filepath.Join(root, "examples", "exec", "sha256.sh")
	for i, ip := range nodeIPs {
		startNode(t, etcd, prefix, ip, string(rune('a'+i)), "--exec", sha, "--task-interval", "0")
	}
	testutil.Eventually(t, 20*time.Second, "2 members and a master", func() bool {
		st, ok := status(t, etcd, prefix)
		return ok && len(st.Members) == 2 && st.Master != nil
	})
	start(t, "goworker", goworker, "--etcd", etcd, "--advertise", workerIP)
	var workerID string
	testutil.Eventually(t, 20*time.Second, "the goworker a member", func() bool {
		st, _ := status(t, etcd, prefix)
		for _, m := range st.Members {
			if m.IP == workerIP {
				workerID = m.ID
			}
		}
		return workerID != ""
	})

	t.Run("shell handler via meshpool submit", func(t *testing.T) {
		stdout, stderr, code := run(t, "submit", "--server", "nats://"+nodeIPs[0]+":4222",
			"--kind", "sha256", "--payload", `"hello"`, "--wait", "--json")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		// The payload arrives exactly as submitted: the JSON string, quotes and all.
		checkSHA256(t, stdout, `"hello"`)
	})

	t.Run("Go worker via meshpool submit", func(t *testing.T) {
		stdout, stderr, code := run(t, "submit", "--server", "nats://"+workerIP+":4222",
			"--kind", "wordcount", "--payload", `{"text":"to be or not to be"}`, "--wait", "--json")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		res := decodeResult(t, stdout)
		var counts struct {
			Words    int            `json:"words"`
			Distinct map[string]int `json:"distinct"`
		}
		if err := json.Unmarshal(res.Result, &counts); err != nil {
			t.Fatalf("result %s: %v", res.Result, err)
		}
		if counts.Words != 6 || counts.Distinct["be"] != 2 || len(counts.Distinct) != 4 {
			t.Errorf("result %s: want 6 words, 4 distinct, be twice", res.Result)
		}
		if res.Executor != workerID {
			t.Errorf("executor %s, want the goworker, %s", res.Executor, workerID)
		}
	})

	t.Run("nats req", func(t *testing.T) {
		nats := natsCLI(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, nats, "-s", "nats://"+nodeIPs[1]+":4222",
			"req", "tasks.submit", `{"kind":"sha256","payload":"hi"}`, "--raw").CombinedOutput()
		if err != nil {
			t.Fatalf("nats req: %v\n%s", err, out)
		}
		var reply struct {
			UUID     string `json:"uuid"`
			Accepted bool   `json:"accepted"`
			State    string `json:"state"`
			Term     int64  `json:"term"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(out), &reply); err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		if !reply.Accepted || reply.UUID == "" || (reply.State != "pending" && reply.State != "running") || reply.Term < 1 {
			t.Errorf("answer %s: want accepted, a uuid, pending or running (a worker took it at once) and a term", out)
		}
	})

	t.Run("JavaScript client", func(t *testing.T) {
		for _, tool := range []string{"node", "npm"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("no %s on PATH", tool)
			}
		}
		dir := t.TempDir()
		for _, f := range []string{"package.json", "package-lock.json", "submit.mjs"} {
			b, err := os.ReadFile(filepath.Join(root, "examples", "js", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
		defer cancel()
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
		node := exec.CommandContext(ctx, "node", "submit.mjs", "sha256", `"js"`)
		node.Dir = dir
		node.Env = append(os.Environ(), "NATS_URL=nats://"+nodeIPs[1]+":4222")
		var stdout, stderr bytes.Buffer
		node.Stdout, node.Stderr = &stdout, &stderr
		if err := node.Run(); err != nil {
			t.Fatalf("node submit.mjs: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		if n := strings.Count(strings.TrimSpace(stdout.String()), "\n"); n != 0 {
			t.Errorf("want one line, got:\n%s", stdout.String())
		}
		checkSHA256(t, stdout.String(), `"js"`)
	})
}

func decodeResult(t *testing.T, out string) exampleResult {
	t.Helper()
	var res exampleResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("result %q: %v", out, err)
	}
	if res.Error != "" || res.UUID == "" {
		t.Fatalf("result %s: want a uuid and no error", out)
	}
	return res
}

// checkSHA256 checks that out is the result of the sha256 kind for payload,
// run by a stock node: the shell handler examples/exec/sha256.sh.
func checkSHA256(t *testing.T, out, payload string) {
	t.Helper()
	res := decodeResult(t, out)
	var got struct {
		SHA256 string `json:"sha256"`
		Task   string `json:"task"`
	}
	if err := json.Unmarshal(res.Result, &got); err != nil {
		t.Fatalf("result %s: %v", res.Result, err)
	}
	sum := sha256.Sum256([]byte(payload))
	if want := hex.EncodeToString(sum[:]); got.SHA256 != want {
		t.Errorf("sha256 %s, want %s, the sha256 of the %d bytes %s", got.SHA256, want, len(payload), payload)
	}
	if res.Kind != "sha256" || got.Task != res.UUID {
		t.Errorf("result %s: want kind sha256 and the task's own uuid", out)
	}
	if !strings.HasPrefix(res.Executor, "a-") && !strings.HasPrefix(res.Executor, "b-") {
		t.Errorf("executor %s, want a stock node (a or b)", res.Executor)
	}
}
