package e2e_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/testutil"
)

// etcd replaced by an empty one (stopped, its data wiped, started again on
// the same ports) under three node processes: within a few TTLs one master
// that every node's /status names, it records and answers a submission, and
// the mastership does not flap.
func TestEtcdReplacedByAnEmptyOne(t *testing.T) {
	c := newPCluster(t, 47)
	// A cluster that has run a while: revisions and terms are well above
	// what the new etcd reaches soon.
	for i := range 200 {
		if _, err := c.cli.Put(t.Context(), "/other/key", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	promotions := func() int {
		sum := 0
		for _, n := range c.nodes {
			v, _ := metric(n.httpURL(), "meshpool_promotions_total")
			p, _ := strconv.Atoi(v)
			sum += p
		}
		return sum
	}
	before := promotions()
	old, _ := httpStatus(c.nodes[0].httpURL())

	c.etcd.stop()
	c.etcd.dir = t.TempDir()
	c.etcd.start()

	var master nodeStatus
	testutil.Eventually(t, 10*faultTTL, "one master on the new etcd that every node's /status names", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		l, err := election.CurrentLeader(ctx, c.cli, c.prefix)
		if err != nil || l.ID == "" {
			return false
		}
		masters := 0
		for _, n := range c.nodes {
			s, err := httpStatus(n.httpURL())
			if err != nil || s.Master.ID != l.ID || s.Master.Term != l.Term {
				return false
			}
			if s.IsMaster {
				masters++
				master = s
			}
		}
		return masters == 1 && master.ID == l.ID
	})
	t.Logf("%s is master with term %d on the new etcd (term %d before)", master.ID, master.Master.Term, old.Master.Term)

	out, errOut, code := run(t, "submit", "--server", c.nodes[0].clientURL(), "--count", "5", "--wait", "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "results 5, missing 0") {
		t.Fatalf("submit after the replacement: exit %d: %s %s", code, out, errOut)
	}
	if p := promotions() - before; p >= 5 {
		t.Fatalf("%d promotions after the replacement, want a few", p)
	}
	for _, n := range c.nodes {
		s, err := httpStatus(n.httpURL())
		if err != nil || s.Master != master.Master {
			t.Errorf("%s /status names %+v (err %v), want %+v", n.name, s.Master, err, master.Master)
		}
	}
}
