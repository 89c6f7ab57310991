package e2e_test

import (
	"bufio"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// metric reads one unlabelled sample from a node's /metrics.
func metric(url, name string) (string, bool) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v, true
		}
	}
	return "", false
}

// kill -9 of a node shows in the others' /metrics within the TTL (3s).
func TestKilledNodeLeavesMetricsWithinTTL(t *testing.T) {
	etcd := startEtcd(t)
	const prefix = "/metrics"
	ips := []string{"127.0.0.72", "127.0.0.73", "127.0.0.74"}
	procs := map[string]*proc{}
	for i, ip := range ips {
		procs[ip] = startNode(t, etcd, prefix, ip, string(rune('a'+i)))
	}
	testutil.Eventually(t, 20*time.Second, "meshpool_members 3 on every node", func() bool {
		for _, ip := range ips {
			if v, ok := metric("http://"+ip+":8222", "meshpool_members"); !ok || v != "3" {
				return false
			}
		}
		return true
	})
	killed := time.Now()
	procs[ips[0]].signal(syscall.SIGKILL)
	testutil.Eventually(t, 3*time.Second+2*time.Second, "meshpool_members 2 on the others", func() bool {
		for _, ip := range ips[1:] {
			if v, ok := metric("http://"+ip+":8222", "meshpool_members"); !ok || v != "2" {
				return false
			}
		}
		return true
	})
	t.Logf("kill -9 seen in the others' /metrics after %s (ttl 3s)", time.Since(killed).Round(time.Millisecond))
}
