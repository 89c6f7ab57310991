package node_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/node"
)

// TestTLSExpiryShown: a node with NATS TLS shows when its certificate
// expires, in /status (tls_not_after) and /metrics
// (meshpool_tls_cert_expiry_seconds, the Unix time).
func TestTLSExpiryShown(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA", pki.ValidFor(pki.CALifetime))
	if err != nil {
		t.Fatal(err)
	}
	caFile, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	if err := ca.WriteCert(caFile); err != nil {
		t.Fatal(err)
	}
	ips, err := pki.IPs("127.0.0.2") // the cluster's first node
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	leaf, err := ca.Issue("node", ips, pki.Validity{NotBefore: time.Now().Add(-time.Minute), NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Write(cert, key); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.NATS = broker.Security{CAFile: caFile, CertFile: cert, KeyFile: key}
	})
	n, _ := c.startN(1)

	if got := n.Status().TLSNotAfter; !got.Equal(notAfter) {
		t.Errorf("Status().TLSNotAfter = %s, want %s", got, notAfter)
	}
	code, body := httpGet(t, n, "/status")
	var s struct {
		TLSNotAfter time.Time `json:"tls_not_after"`
	}
	if err := json.Unmarshal(body, &s); code != http.StatusOK || err != nil || !s.TLSNotAfter.Equal(notAfter) {
		t.Errorf("/status: %d, tls_not_after %s (%v), want %s", code, s.TLSNotAfter, err, notAfter)
	}
	if m, _ := scrape(t, n); m["meshpool_tls_cert_expiry_seconds"] != float64(notAfter.Unix()) {
		t.Errorf("meshpool_tls_cert_expiry_seconds = %v, want %d", m["meshpool_tls_cert_expiry_seconds"], notAfter.Unix())
	}
}
