package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// natsCLI finds the real nats CLI: on PATH, or where `go install` put it
// (scripts/install-test-deps.sh).
func natsCLI(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no nats CLI on PATH or in $(go env GOPATH)/bin; run scripts/install-test-deps.sh")
	return ""
}

// `nats sub results`, through one node, and `meshpool watch`, through
// another, show the same results.
func TestNatsCLIAndWatchShowTheSameResults(t *testing.T) {
	nats := natsCLI(t)
	etcd := startEtcd(t)
	const prefix = "/cli"
	for i, ip := range []string{"127.0.0.62", "127.0.0.63", "127.0.0.64"} {
		startNode(t, etcd, prefix, ip, string(rune('a'+i)))
	}
	testutil.Eventually(t, 20*time.Second, "3 members and a master", func() bool {
		s, ok := status(t, etcd, prefix)
		return ok && len(s.Members) == 3 && s.Master != nil
	})
	sub := start(t, "nats sub results", nats, "-s", "nats://127.0.0.62:4222", "sub", "results", "--raw")
	watch := start(t, "meshpool watch", binary, "watch", "--server", "nats://127.0.0.63:4222", "--json")

	fromNats := func() []string {
		var ids []string
		for _, l := range strings.Split(sub.out.String(), "\n") {
			var r result
			if json.Unmarshal([]byte(strings.TrimSpace(l)), &r) == nil && r.UUID != "" {
				ids = append(ids, r.UUID)
			}
		}
		return ids
	}
	fromWatch := func() map[string]bool {
		ids := map[string]bool{}
		for _, l := range strings.Split(watch.out.String(), "\n") {
			var v struct {
				Type   string `json:"type"`
				Result result `json:"result"`
			}
			if json.Unmarshal([]byte(l), &v) == nil && v.Type == "result" {
				ids[v.Result.UUID] = true
			}
		}
		return ids
	}
	testutil.Eventually(t, 20*time.Second, "10 results in nats sub", func() bool { return len(fromNats()) >= 10 })
	sub.signal(syscall.SIGINT)
	watch.signal(syscall.SIGINT)
	sub.wait(t, 5*time.Second)
	watch.wait(t, 5*time.Second)

	// Both started within a moment of each other: leave out the first and
	// last two results nats printed; every other one must be in watch's.
	ids, seen := fromNats(), fromWatch()
	common := 0
	for _, id := range ids[2 : len(ids)-2] {
		if !seen[id] {
			t.Errorf("nats sub showed %s, meshpool watch did not", id)
		}
		common++
	}
	t.Logf("%d results shown by both (%d by nats sub, %d by watch)", common, len(ids), len(seen))
}
