package tlsfiles_test

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// TestSuitesAreAEAD: every suite allowed is ECDHE with AES-GCM or
// ChaCha20-Poly1305, and none is one Go calls insecure.
func TestSuitesAreAEAD(t *testing.T) {
	insecure := map[uint16]bool{}
	for _, cs := range tls.InsecureCipherSuites() {
		insecure[cs.ID] = true
	}
	for i, name := range tlsfiles.SuiteNames() {
		id := tlsfiles.Suites()[i]
		if insecure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305_")) {
			t.Errorf("suite %s is allowed", name)
		}
	}
	cfg := tlsfiles.Harden(&tls.Config{MinVersion: tls.VersionTLS10})
	if cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.CipherSuites, tlsfiles.Suites()) {
		t.Errorf("Harden: MinVersion %x, suites %v", cfg.MinVersion, cfg.CipherSuites)
	}
}

// TestClientConfigRefusesCBC: the client config (etcd's, the CLI's NATS
// one) is hardened, and a server that offers only a CBC suite is refused
// while one with an AEAD suite is not.
func TestClientConfigRefusesCBC(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA", pki.ValidFor(time.Hour))
	must(t, err)
	caFile, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "s.pem"), filepath.Join(dir, "s-key.pem")
	must(t, ca.WriteCert(caFile))
	ips, err := pki.IPs("127.0.0.1")
	must(t, err)
	leaf, err := ca.Issue("server", ips, pki.ValidFor(time.Hour))
	must(t, err)
	must(t, leaf.Write(cert, key))
	kp, err := tlsfiles.KeyPair(cert, key)
	must(t, err)

	cfg, err := tlsfiles.ClientConfig(caFile, "", "")
	must(t, err)
	if cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.CipherSuites, tlsfiles.Suites()) {
		t.Fatalf("ClientConfig: MinVersion %x, suites %v", cfg.MinVersion, cfg.CipherSuites)
	}
	for _, tt := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, true},
	} {
		t.Run(tls.CipherSuiteName(tt.suite), func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			defer s.Close()
			srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{kp}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tt.suite}})
			done := make(chan error, 1)
			go func() { done <- srv.Handshake() }()
			cc := cfg.Clone()
			cc.ServerName = "127.0.0.1"
			err := tls.Client(c, cc).Handshake()
			c.Close()
			<-done
			if got := err == nil; got != tt.ok {
				t.Errorf("server with only %s: handshake done %v (err %v), want %v", tls.CipherSuiteName(tt.suite), got, err, tt.ok)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
