package broker_test

import (
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// TestTLSRefusesCBC: the client and the route listener of a secure node
// accept TLS 1.2 with an AEAD suite and refuse TLS 1.2 offering only a CBC
// suite (which Go's defaults accept).
func TestTLSRefusesCBC(t *testing.T) {
	p := newSecurePKI(t)
	a := startSecure(t, "a", 0, p.security(0))
	pool, err := tlsfiles.CAPool(p.ca)
	check(t, err)
	// The route listener wants a client certificate from the CA.
	peer, err := tls.LoadX509KeyPair(p.certs[1], p.keys[1])
	check(t, err)
	routeAddr := hostPort(t, a.b.ClusterURL())

	tests := []struct {
		name  string
		suite uint16
		ok    bool
	}{
		{"CBC", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"CBC-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{"AES-GCM", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"ChaCha20-Poly1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	}
	for _, tt := range tests {
		offer := func() *tls.Config {
			return &tls.Config{
				RootCAs:      pool,
				MinVersion:   tls.VersionTLS12,
				MaxVersion:   tls.VersionTLS12,
				CipherSuites: []uint16{tt.suite},
			}
		}
		t.Run("client port/"+tt.name, func(t *testing.T) {
			nc, err := nats.Connect(a.b.ClientURL(), nats.Secure(offer()), nats.UserInfo("submitter", submitterPassword),
				nats.MaxReconnects(0), nats.Timeout(2*time.Second))
			if err == nil {
				defer nc.Close()
			}
			if got := err == nil; got != tt.ok {
				t.Fatalf("TLS 1.2 with only %s: connected %v (err %v), want %v", tls.CipherSuiteName(tt.suite), got, err, tt.ok)
			}
			if !tt.ok && !tlsfiles.IsHandshakeError(err.Error()) {
				t.Errorf("refused, but not by the handshake: %v", err)
			}
		})
		t.Run("route port/"+tt.name, func(t *testing.T) {
			cfg := offer()
			cfg.Certificates, cfg.ServerName = []tls.Certificate{peer}, strings.Split(routeAddr, ":")[0]
			// Routes speak TLS first.
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", routeAddr, cfg)
			if err == nil {
				defer conn.Close()
			}
			if got := err == nil; got != tt.ok {
				t.Fatalf("TLS 1.2 with only %s: handshake done %v (err %v), want %v", tls.CipherSuiteName(tt.suite), got, err, tt.ok)
			}
		})
	}
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	check(t, err)
	return u.Host
}

// TestCertNotAfter: a secure broker reports when its certificate expires;
// one without TLS reports the zero time.
func TestCertNotAfter(t *testing.T) {
	p := newSecurePKI(t)
	a := startSecure(t, "a", 0, p.security(0))
	kp, err := tlsfiles.KeyPair(p.certs[0], p.keys[0])
	check(t, err)
	if got, want := a.b.CertNotAfter(), kp.Leaf.NotAfter; !got.Equal(want) {
		t.Errorf("CertNotAfter() = %s, want %s", got, want)
	}
	plain := startSecure(t, "plain", 1, broker.Security{})
	if got := plain.b.CertNotAfter(); !got.IsZero() {
		t.Errorf("without TLS, CertNotAfter() = %s, want zero", got)
	}
}
