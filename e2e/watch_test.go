package e2e_test

import (
	"encoding/json"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/testutil"
)

// meshpool watch shows the same results as a plain subscription, and the
// cluster's events: a member leaving, a new master promoted.
func TestWatchShowsResultsAndEvents(t *testing.T) {
	etcd := startEtcd(t)
	const prefix = "/watch"
	ips := []string{"127.0.0.42", "127.0.0.43", "127.0.0.44"}
	procs := map[string]*proc{}
	for i, ip := range ips {
		procs[ip] = startNode(t, etcd, prefix, ip, string(rune('a'+i)))
	}
	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "3 members and a master", func() bool {
		var ok bool
		st, ok = status(t, etcd, prefix)
		return ok && len(st.Members) == 3 && st.Master != nil
	})
	var worker record
	for _, m := range st.Members {
		if m.ID != st.Master.ID {
			worker = m
		}
	}
	watch := start(t, "meshpool watch", binary, "watch", "--server", worker.ClientURL, "--json")
	nc, err := nats.Connect(worker.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	direct := map[string]bool{}
	if _, err := nc.Subscribe("results", func(m *nats.Msg) {
		var r result
		if json.Unmarshal(m.Data, &r) == nil {
			mu.Lock()
			direct[r.UUID] = true
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Type   string `json:"type"`
		Result result `json:"result"`
		Event  struct {
			Kind string `json:"kind"`
			Node string `json:"node"`
			Term int64  `json:"term"`
		} `json:"event"`
	}
	lines := func() []line {
		var out []line
		for _, l := range strings.Split(watch.out.String(), "\n") {
			var v line
			if json.Unmarshal([]byte(l), &v) == nil && v.Type != "" {
				out = append(out, v)
			}
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, "watch shows 5 results", func() bool {
		n := 0
		for _, l := range lines() {
			if l.Type == "result" {
				n++
			}
		}
		return n >= 5
	})

	// A worker leaves: the master announces it.
	var leaverIP string
	for _, m := range st.Members {
		if m.ID != st.Master.ID && m.ID != worker.ID {
			leaverIP = m.IP
		}
	}
	procs[leaverIP].signal(syscall.SIGTERM)
	testutil.Eventually(t, 10*time.Second, "a 'left' event", func() bool {
		for _, l := range lines() {
			if l.Type == "event" && l.Event.Kind == "left" {
				return true
			}
		}
		return false
	})
	// The master leaves: the next one announces its promotion.
	for _, m := range st.Members {
		if m.ID == st.Master.ID {
			procs[m.IP].signal(syscall.SIGTERM)
		}
	}
	testutil.Eventually(t, 10*time.Second, "a 'promoted' event from the new master", func() bool {
		for _, l := range lines() {
			if l.Type == "event" && l.Event.Kind == "promoted" && l.Event.Node == worker.ID && l.Event.Term > st.Term {
				return true
			}
		}
		return false
	})
	// watch and a plain subscription see the same results (watch started
	// first, so only the plain one may have missed its earliest ones).
	mu.Lock()
	defer mu.Unlock()
	seen := 0
	for _, l := range lines() {
		if l.Type == "result" && direct[l.Result.UUID] {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("watch and a plain subscription saw no result in common")
	}
}

func TestStatusWatchRefreshes(t *testing.T) {
	etcd := startEtcd(t)
	startNode(t, etcd, "/sw", "127.0.0.45", "a")
	testutil.Eventually(t, 20*time.Second, "a member", func() bool {
		s, ok := status(t, etcd, "/sw")
		return ok && len(s.Members) == 1
	})
	p := start(t, "status --watch", binary, "status", "--etcd", etcd, "--prefix", "/sw", "--watch", "--interval", "100ms")
	testutil.Eventually(t, 10*time.Second, "three refreshes", func() bool {
		return strings.Count(p.out.String(), "\033[H\033[2J") >= 3 && strings.Count(p.out.String(), "1 members") >= 3
	})
	p.signal(syscall.SIGINT)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("status --watch exited %d on SIGINT", code)
	}
}
