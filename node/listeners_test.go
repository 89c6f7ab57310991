package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/node"
)

// TestHTTPListeners: --http-addr 0.0.0.0 listens everywhere and registers
// the advertise IP; --metrics-addr takes the operators' endpoints (and the
// live page, which shows every result) off the main listener.
func TestHTTPListeners(t *testing.T) {
	c := newCluster(t, func(cfg *node.Config) {
		cfg.HTTPAddr = "0.0.0.0"
		cfg.MetricsAddr = "127.0.0.2:0" // the first node's address, a free port
	})
	n := c.start()
	c.waitConverged(10 * time.Second)
	main := n.Status().HTTPURL
	if !strings.HasPrefix(main, "http://127.0.0.2:") {
		t.Fatalf("registered HTTP URL %q, want the advertise IP", main)
	}
	metrics := n.MetricsURL()
	if metrics == "" || metrics == main {
		t.Fatalf("metrics URL %q", metrics)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	code := func(url string) int {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// 0.0.0.0 listens on every address, loopback ones included.
	port := main[strings.LastIndex(main, ":"):]
	for url, want := range map[string]int{
		main + "/healthz": 200, main + "/readyz": 200, "http://127.0.0.1" + port + "/healthz": 200,
		main + "/status": 404, main + "/metrics": 404, main + "/": 404, main + "/nats/varz": 404,
		metrics + "/status": 200, metrics + "/metrics": 200, metrics + "/": 200, metrics + "/nats/varz": 200, metrics + "/healthz": 200,
	} {
		if got := code(url); got != want {
			t.Errorf("GET %s: %d, want %d", url, got, want)
		}
	}
}
