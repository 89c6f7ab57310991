package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/node"
)

// httpGet fetches path from n's HTTP server. Keep-alives are off so that no
// client connection outlives the test (goleak).
func httpGet(t *testing.T, n *node.Node, path string) (int, []byte) {
	t.Helper()
	base := n.Status().HTTPURL
	if base == "" {
		t.Fatalf("%s has no HTTP URL (not running?)", n.ID())
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: reading body: %v", base, path, err)
	}
	return resp.StatusCode, body
}

func getJSON(t *testing.T, n *node.Node, path string, v any) {
	t.Helper()
	code, body := httpGet(t, n, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s on %s: %d %s", path, n.ID(), code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s on %s: not JSON: %v: %.200s", path, n.ID(), err, body)
	}
}

func TestReadyzOnAConvergedCluster(t *testing.T) {
	c := newCluster(t, nil)
	c.startN(3)
	for _, n := range c.running() {
		if code, body := httpGet(t, n, "/readyz"); code != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("%s /readyz: %d %q, want 200 \"ok\"", n.ID(), code, body)
		}
		if code, _ := httpGet(t, n, "/healthz"); code != http.StatusOK {
			t.Errorf("%s /healthz: %d", n.ID(), code)
		}
		var s node.Status
		getJSON(t, n, "/status", &s)
		if s.ID != n.ID() || !s.Registered || len(s.Members) != 3 {
			t.Errorf("%s /status: %+v", n.ID(), s)
		}
	}
}

func TestReadyzWithoutEtcdSaysNotRegistered(t *testing.T) {
	// An etcd endpoint where nothing listens: the node starts, serves
	// HTTP, but can never register.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c := newCluster(t, func(cfg *node.Config) { cfg.Etcd = []string{dead} })
	n := c.start()
	testutil.Eventually(t, 10*time.Second, "the node serves HTTP", func() bool { return n.Status().HTTPURL != "" })

	if code, _ := httpGet(t, n, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200: the process is alive", code)
	}
	// It stays unready while it keeps trying.
	testutil.ConsistentlyNil(t, time.Second, func() error {
		if code, body := httpGet(t, n, "/readyz"); code != http.StatusServiceUnavailable || string(body) != "not registered\n" {
			return fmt.Errorf("/readyz: %d %q, want 503 \"not registered\"", code, body)
		}
		return nil
	})
}

func TestNATSMonitoringIsProxied(t *testing.T) {
	c := newCluster(t, nil)
	c.startN(3)
	nodes := c.running()
	for _, n := range nodes {
		var others []string
		for _, o := range nodes {
			if o != n {
				others = append(others, o.ID())
			}
		}

		var varz struct {
			Name   string `json:"server_name"`
			Routes int    `json:"routes"`
		}
		getJSON(t, n, "/nats/varz", &varz)
		if varz.Name != n.ID() || varz.Routes < len(others) {
			t.Errorf("%s /nats/varz: server_name %q routes %d, want %q and at least %d", n.ID(), varz.Name, varz.Routes, n.ID(), len(others))
		}

		var routez struct {
			Name      string `json:"server_name"`
			NumRoutes int    `json:"num_routes"`
			Routes    []struct {
				RemoteName string `json:"remote_name"`
			} `json:"routes"`
		}
		getJSON(t, n, "/nats/routez", &routez)
		var remotes []string
		for _, r := range routez.Routes {
			remotes = append(remotes, r.RemoteName)
		}
		slices.Sort(remotes)
		remotes = slices.Compact(remotes)
		if routez.Name != n.ID() || routez.NumRoutes < len(others) || !slices.Equal(remotes, others) {
			t.Errorf("%s /nats/routez: server %q, %d routes to %v, want routes to %v", n.ID(), routez.Name, routez.NumRoutes, remotes, others)
		}

		// The node's own in-process client is among the connections.
		var connz struct {
			Conns []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		getJSON(t, n, "/nats/connz", &connz)
		if !slices.ContainsFunc(connz.Conns, func(c struct {
			Name string `json:"name"`
		}) bool {
			return c.Name == n.ID()
		}) {
			t.Errorf("%s /nats/connz does not list the node's own connection: %+v", n.ID(), connz.Conns)
		}

		var subsz struct {
			NumSubs int `json:"num_subscriptions"`
		}
		getJSON(t, n, "/nats/subsz", &subsz)
		if subsz.NumSubs == 0 {
			t.Errorf("%s /nats/subsz: no subscriptions, want at least the worker's", n.ID())
		}
	}
}

// A registered member that never routes keeps the nodes unready only for
// a grace: then /readyz answers 200 again and /status lists it unrouted.
func TestMemberThatNeverRoutesStopsBlockingReadiness(t *testing.T) {
	node.ShortenUnroutedGrace(t, 2*time.Second)
	c := newCluster(t, nil)
	c.startN(2)
	const ghost = "ghost-00000000"
	c.registerFake(t, ghost, "ghost")
	for _, n := range c.running() {
		testutil.Eventually(t, 5*time.Second, n.ID()+" unready for the ghost", func() bool {
			code, body := httpGet(t, n, "/readyz")
			return code == http.StatusServiceUnavailable && string(body) == "no route to "+ghost+"\n"
		})
	}
	for _, n := range c.running() {
		testutil.Eventually(t, 10*time.Second, n.ID()+" ready again, the ghost listed unrouted", func() bool {
			code, _ := httpGet(t, n, "/readyz")
			return code == http.StatusOK && slices.Contains(n.Status().Unrouted, ghost)
		})
	}
}

func TestProfilesOnlyWhenAskedFor(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := newCluster(t, func(cfg *node.Config) { cfg.Profiling = on })
		n, _ := c.startN(1)
		code, body := httpGet(t, n, "/debug/pprof/goroutine?debug=1")
		switch {
		case on && (code != http.StatusOK || !strings.Contains(string(body), "goroutine profile")):
			t.Errorf("with Profiling: /debug/pprof/goroutine: %d %.100q, want 200 and the profile", code, body)
		case !on && code != http.StatusNotFound:
			t.Errorf("without Profiling: /debug/pprof/goroutine: %d, want 404", code)
		}
	}
}
