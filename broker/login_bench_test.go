//go:build unix

package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/pki"
)

// BenchmarkFailedLogin measures what a failed login costs the server, in
// CPU (the whole process's, client included) and time, for a user with a
// bcrypt password of the cost secure-setup --passwords writes, and for one
// with an nkey (secure-setup's default):
//
//	go test -run '^$' -bench FailedLogin -benchtime 20x ./broker
func BenchmarkFailedLogin(b *testing.B) {
	dir := b.TempDir()
	ca, err := pki.NewCA("bench CA", pki.ValidFor(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	ips, _ := pki.IPs("127.0.0.91")
	leaf, err := ca.Issue("bench", ips, pki.ValidFor(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	caFile, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "n.pem"), filepath.Join(dir, "n-key.pem")
	if err := ca.WriteCert(caFile); err != nil {
		b.Fatal(err)
	}
	if err := leaf.Write(cert, key); err != nil {
		b.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("the-password"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	known, _ := nkeys.CreateUser()
	knownPub, _ := known.PublicKey()
	cfg := broker.DefaultConfig()
	cfg.Name, cfg.Host, cfg.ClientPort, cfg.ClusterPort = "bench", "127.0.0.91", broker.RandomPort, broker.RandomPort
	cfg.Security = broker.Security{CAFile: caFile, CertFile: cert, KeyFile: key, Users: []broker.User{
		{Name: "pw", Role: broker.RoleSubmitter, PasswordHash: string(hash)},
		{Nkey: knownPub, Role: broker.RoleSubmitter},
	}}
	br, err := broker.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tc := &tls.Config{RootCAs: pool}
	// An nkey login that fails: the right public key, signed by another key.
	other, _ := nkeys.CreateUser()
	for _, bb := range []struct {
		name  string
		login nats.Option
	}{
		{"bcrypt password", nats.UserInfo("pw", "wrong")},
		{"nkey", nats.Nkey(knownPub, other.Sign)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				nc, err := nats.Connect(br.ClientURL(), nats.Secure(tc), bb.login, nats.MaxReconnects(0))
				if err == nil {
					nc.Close()
					b.Fatal("logged in")
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/login")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
