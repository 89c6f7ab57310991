package node_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/node"
)

// scrape fetches and parses n's /metrics.
func scrape(t *testing.T, n *node.Node) (map[string]float64, []byte) {
	t.Helper()
	code, body := httpGet(t, n, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %s", n.ID(), code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", n.ID(), err)
	}
	out := map[string]float64{}
	for name, mf := range families {
		if !strings.HasPrefix(name, "meshpool_") {
			continue
		}
		if ms := mf.GetMetric(); len(ms) > 0 && len(ms[0].GetLabel()) > 0 {
			continue // labelled (by kind): read from the body
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			out[name] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[name] = m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			out[name+"_sum"] = m.GetHistogram().GetSampleSum()
		}
	}
	return out, body
}

func TestMetrics(t *testing.T) {
	// No demo tasks: every task is one this test submits.
	c := newCluster(t, func(cfg *node.Config) { cfg.TaskInterval = 0 })
	master, workers := c.startN(3)

	for _, n := range c.running() {
		m, body := scrape(t, n)
		for _, name := range []string{
			"meshpool_members", "meshpool_is_master", "meshpool_term", "meshpool_routes",
			"meshpool_tasks_dispatched_total", "meshpool_tasks_completed_total", "meshpool_tasks_redispatched_total",
			"meshpool_tasks_refused_total", "meshpool_submissions_accepted_total", "meshpool_submissions_duplicate_total",
			"meshpool_results_duplicate_total", "meshpool_tasks_in_flight", "meshpool_worker_tasks_in_flight",
			"meshpool_task_latency_seconds_count", "meshpool_nats_reconnects_total",
			"meshpool_etcd_reregistrations_total", "meshpool_etcd_session_recreations_total",
			"meshpool_master_not_member", "meshpool_etcd_replacements_total", "meshpool_promotions_total",
			"meshpool_election_keys_removed_total",
		} {
			if _, ok := m[name]; !ok {
				t.Errorf("%s: %s missing", n.ID(), name)
			}
		}
		if m["meshpool_members"] != 3 || m["meshpool_routes"] != 2 {
			t.Errorf("%s: members %v routes %v, want 3 and 2", n.ID(), m["meshpool_members"], m["meshpool_routes"])
		}
		s := n.Status()
		if want := float64(s.Master.Term); m["meshpool_term"] != want || want == 0 {
			t.Errorf("%s: term %v, status says master term %v", n.ID(), m["meshpool_term"], want)
		}
		wantMaster := 0.0
		if n == master {
			wantMaster = 1
			if m["meshpool_term"] != float64(s.Dispatch.Term) {
				t.Errorf("master: term %v, Dispatch.Term %d", m["meshpool_term"], s.Dispatch.Term)
			}
		}
		if m["meshpool_is_master"] != wantMaster {
			t.Errorf("%s: is_master %v, want %v", n.ID(), m["meshpool_is_master"], wantMaster)
		}
		promtoolCheck(t, n.ID(), body)
	}

	before, _ := scrape(t, master)
	cl, err := client.Dial(clientURL(t, workers[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const tasks = 20
	rep, err := cl.Load(t.Context(), client.LoadSpec{N: tasks, Concurrency: 4, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != tasks || rep.Missing != 0 {
		t.Fatalf("load: %+v", rep)
	}

	// The result a client sees is published before the master records it:
	// wait for the master's books to settle.
	var m map[string]float64
	testutil.Eventually(t, 10*time.Second, "the master has recorded every task", func() bool {
		m, _ = scrape(t, master)
		return m["meshpool_tasks_completed_total"]-before["meshpool_tasks_completed_total"] == tasks &&
			m["meshpool_tasks_in_flight"] == 0
	})
	if got := m["meshpool_submissions_accepted_total"] - before["meshpool_submissions_accepted_total"]; got != tasks {
		t.Errorf("submissions_accepted_total rose by %v, want %d", got, tasks)
	}
	if got := m["meshpool_tasks_dispatched_total"] - before["meshpool_tasks_dispatched_total"]; got < tasks {
		t.Errorf("tasks_dispatched_total rose by %v, want at least %d", got, tasks)
	}
	if got, want := m["meshpool_task_latency_seconds_count"], m["meshpool_tasks_completed_total"]; got != want {
		t.Errorf("latency histogram count %v, tasks completed %v", got, want)
	}
	// WorkTime is 10-40ms: each latency is at least that.
	if sum := m["meshpool_task_latency_seconds_sum"]; sum < tasks*0.01 {
		t.Errorf("latency sum %vs for %d tasks of at least 10ms", sum, tasks)
	}
	if s := master.Status().Dispatch; m["meshpool_submissions_accepted_total"] != float64(s.Accepted) {
		t.Errorf("submissions_accepted_total %v, status %d", m["meshpool_submissions_accepted_total"], s.Accepted)
	}
	var worked float64
	for _, w := range workers {
		wm, _ := scrape(t, w)
		worked += wm["meshpool_worker_tasks_completed_total"]
		if wm["meshpool_tasks_completed_total"] != 0 {
			t.Errorf("worker %s counts master completions: %v", w.ID(), wm["meshpool_tasks_completed_total"])
		}
	}
	if worked < tasks {
		t.Errorf("workers completed %v tasks, want at least %d", worked, tasks)
	}
	_, body := scrape(t, master)
	promtoolCheck(t, master.ID(), body)
}

// promtoolCheck lints a scrape with promtool when it is installed; the
// end-to-end run (MESHPOOL_E2E=1) requires it.
func promtoolCheck(t *testing.T, who string, body []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MESHPOOL_E2E") == "1" {
			t.Fatalf("promtool not found and MESHPOOL_E2E=1: run scripts/install-test-deps.sh")
		}
		t.Log("promtool not found: skipping promtool check metrics")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s's scrape: %v\n%s", who, err, out)
	}
}
