package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// TestSecureSetupLifetimes: the CA outlives the certificates it issues by
// years, and --renew issues new certificates from the same CA, leaving the
// CA and the secrets as they were.
func TestSecureSetupLifetimes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	secureSetup := func(extra ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		args := append([]string{"secure-setup", "--dir", dir, "--node-ips", "10.0.0.1,10.0.0.2", "--etcd-ips", "10.0.0.9"}, extra...)
		if err := m.Run(t.Context(), args); err != nil {
			t.Fatalf("%v: %v; stderr: %s", args, err, stderr.String())
		}
	}
	secureSetup()
	f := filesIn(dir)
	ca := readCert(t, f.CA)
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -time.Minute || d > time.Minute {
			t.Errorf("%s expires at %s, want about %s", what, got, want)
		}
	}
	now := time.Now()
	near("the CA", ca.NotAfter, now.Add(pki.CALifetime))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	nodeA, _ := f.NodeCert("10.0.0.1")
	nodeB, _ := f.NodeCert("10.0.0.2")
	leaves := func() []*x509.Certificate {
		var out []*x509.Certificate
		for _, file := range []string{nodeA, nodeB, f.EtcdCert, f.ClientCert} {
			c := readCert(t, file)
			near(file, c.NotAfter, time.Now().Add(pki.LeafLifetime))
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s does not verify against the CA: %v", file, err)
			}
			out = append(out, c)
		}
		return out
	}
	before := leaves()
	// Each node has its own certificate, for its own IP only, and only
	// the nodes' carry the route identity; etcd's is server only and the
	// operators' client only.
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.9", ""} {
		c := before[i]
		var ips []string
		for _, a := range c.IPAddresses {
			ips = append(ips, a.String())
		}
		if want := ip; (want == "" && len(ips) != 0) || (want != "" && (len(ips) != 1 || ips[0] != want)) {
			t.Errorf("certificate %q is for %v, want %q", c.Subject.CommonName, ips, want)
		}
		if isNode := i < 2; tlsfiles.IsNode(c) != isNode {
			t.Errorf("certificate %q: route identity %v, want %v", c.Subject.CommonName, !isNode, isNode)
		}
	}
	if u := before[2].ExtKeyUsage; len(u) != 1 || u[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("etcd.pem key usages %v, want server only", u)
	}
	if u := before[3].ExtKeyUsage; len(u) != 1 || u[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client.pem key usages %v, want client only", u)
	}
	caPEM, secret := mustReadFile(t, f.CA), mustReadFile(t, f.RouteSecret)

	secureSetup("--renew")
	after := leaves()
	for i := range before {
		if before[i].SerialNumber.Cmp(after[i].SerialNumber) == 0 {
			t.Errorf("--renew left certificate %s as it was", after[i].Subject.CommonName)
		}
	}
	if !bytes.Equal(caPEM, mustReadFile(t, f.CA)) || !bytes.Equal(secret, mustReadFile(t, f.RouteSecret)) {
		t.Error("--renew changed the CA or the route secret")
	}
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(mustReadFile(t, file))
	if b == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustReadFile(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecureSetupUsers: by default the NATS users have nkeys (a seed file
// each, mode 0600, whose public key the users file lists with its role);
// with --passwords, bcrypt hashes of passwords kept in files.
func TestSecureSetupUsers(t *testing.T) {
	for _, passwords := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "s")
		args := []string{"secure-setup", "--dir", dir, "--node-ips", "10.0.0.1", "--etcd-ips", "10.0.0.9"}
		if passwords {
			args = append(args, "--passwords")
		}
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		if err := m.Run(t.Context(), args); err != nil {
			t.Fatalf("%v: %v; stderr: %s", args, err, stderr.String())
		}
		users, err := broker.ReadUsers(filepath.Join(dir, "users"))
		if err != nil {
			t.Fatal(err)
		}
		f := filesIn(dir)
		f.Passwords = passwords
		if len(users) != len(setupUsers) {
			t.Fatalf("users %+v, want one per role", users)
		}
		for i, u := range users {
			role := setupUsers[i]
			file := f.UserSecret(role)
			st, err := os.Stat(file)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, mode %v", file, err, st.Mode())
			}
			secret := bytes.TrimSpace(mustReadFile(t, file))
			if bytes.Contains(stdout.Bytes(), secret) {
				t.Errorf("secure-setup printed the secret of %s", file)
			}
			if u.Role != role {
				t.Errorf("user %d has role %s, want %s", i, u.Role, role)
			}
			if passwords {
				if u.Nkey != "" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), secret) != nil {
					t.Errorf("%s: the users file's hash is not of the password in %s", role, file)
				}
				continue
			}
			kp, err := nkeys.FromSeed(secret)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if pub, _ := kp.PublicKey(); u.Nkey != pub || u.PasswordHash != "" {
				t.Errorf("%s: the users file lists %q, the seed's public key is %q", role, u.Nkey, pub)
			}
		}
	}
}
