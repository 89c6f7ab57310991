package e2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// A master that answers only with temporary refusals (etcd stopped under
// it: nothing can be recorded) is not "no master": submit gives up at its
// timeout with the last answer's reason.
func TestSubmitReportsTheLastAnswer(t *testing.T) {
	e := newEtcd(t)
	const prefix, ip = "/submit", "127.0.0.166"
	// A long TTL: the master keeps leading, and answering, while etcd is down.
	startNode(t, e.endpoint, prefix, ip, "a", "--ttl", "30s", "--task-interval", "0")
	testutil.Eventually(t, 20*time.Second, "a master", func() bool {
		st, ok := status(t, e.endpoint, prefix)
		return ok && st.Master != nil
	})
	server := "nats://" + ip + ":4222"
	if stdout, stderr, code := run(t, "submit", "--server", server, "--number", "1", "--timeout", "10s"); code != 0 {
		t.Fatalf("submit with etcd up: exit %d\n%s%s", code, stdout, stderr)
	}
	e.stop()
	_, stderr, code := run(t, "submit", "--server", server, "--number", "2", "--timeout", "5s")
	t.Logf("submit with etcd down: exit %d: %s", code, strings.TrimSpace(stderr))
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if strings.Contains(stderr, "no master answered") || !strings.Contains(stderr, "not accepted after") ||
		!strings.Contains(stderr, "tries over") || !strings.Contains(stderr, "last answer: ") {
		t.Fatalf("stderr %q: want the last answer's reason, not 'no master answered'", stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("want one line, got:\n%s", stderr)
	}
}
