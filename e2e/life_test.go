package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// taskInfo is the part of `meshpool get --json` the tests read.
type taskInfo struct {
	UUID     string `json:"uuid"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Errors   []struct {
		Error string `json:"error"`
	} `json:"errors"`
}

// The commands of a task's life against a real node: a task that fails
// every attempt fails after --max-attempts, is listed, shown and retried;
// a delayed task is cancelled, once.
func TestTaskLifeCommands(t *testing.T) {
	etcd := startEtcd(t)
	const prefix, ip = "/life", "127.0.0.171"
	startNode(t, etcd, prefix, ip, "a", "--task-interval", "0", "--exec", "fail=/bin/false")
	startNode(t, etcd, prefix, "127.0.0.172", "b", "--task-interval", "0", "--exec", "fail=/bin/false")
	testutil.Eventually(t, 20*time.Second, "2 members and a master", func() bool {
		st, ok := status(t, etcd, prefix)
		return ok && len(st.Members) == 2 && st.Master != nil
	})
	server := "nats://" + ip + ":4222"
	mustRun := func(want int, args ...string) string {
		t.Helper()
		stdout, stderr, code := run(t, append(args, "--server", server)...)
		if code != want {
			t.Fatalf("meshpool %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	get := func(id string) taskInfo {
		t.Helper()
		var ti taskInfo
		if out := mustRun(0, "get", id, "--json"); json.Unmarshal([]byte(out), &ti) != nil {
			t.Fatalf("get --json: %q", out)
		}
		return ti
	}

	out := mustRun(1, "submit", "--kind", "fail", "--max-attempts", "2", "--backoff", "100ms", "--wait", "--json", "--timeout", "20s")
	var res struct{ UUID, Error string }
	if err := json.Unmarshal([]byte(out[:strings.IndexByte(out, '\n')]), &res); err != nil || res.Error == "" {
		t.Fatalf("submit --wait of a failing task: %q (%v)", out, err)
	}
	if ti := get(res.UUID); ti.State != "failed" || ti.Attempts != 2 || len(ti.Errors) != 2 {
		t.Fatalf("get: %+v, want failed after 2 attempts with their errors", ti)
	}
	if out := mustRun(0, "tasks", "--state", "failed"); !strings.Contains(out, res.UUID) || !strings.Contains(out, "2/2") {
		t.Fatalf("tasks --state failed:\n%s", out)
	}
	if out := mustRun(0, "get", res.UUID); !strings.Contains(out, "attempt 2 on ") {
		t.Fatalf("get:\n%s", out)
	}
	if out := mustRun(0, "retry", res.UUID); !strings.Contains(out, "retried 1 tasks") {
		t.Fatalf("retry:\n%s", out)
	}

	out = mustRun(0, "submit", "--kind", "fail", "--delay", "1h", "--json")
	var accepted struct{ UUID string }
	if err := json.Unmarshal([]byte(out), &accepted); err != nil || accepted.UUID == "" {
		t.Fatalf("submit --delay: %q", out)
	}
	if ti := get(accepted.UUID); ti.State != "pending" {
		t.Fatalf("a delayed task is %q, want pending", ti.State)
	}
	mustRun(0, "cancel", accepted.UUID)
	if ti := get(accepted.UUID); ti.State != "cancelled" {
		t.Fatalf("a cancelled task is %q", ti.State)
	}
	if out := mustRun(1, "cancel", accepted.UUID); !strings.Contains(out, "nothing to cancel") {
		t.Fatalf("cancel again:\n%s", out)
	}
}
