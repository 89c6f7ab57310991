package tlsfiles_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// TestOnlyNodeCertificatesRoute: of the three uses pki issues, only a node
// certificate passes CheckIssuedFor and VerifyNodePeer; a server (etcd's)
// and a client (an operator's) certificate from the same CA carry no
// route identity, and their key usages are the one use only.
func TestOnlyNodeCertificatesRoute(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA", pki.ValidFor(time.Hour))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ips, err := pki.IPs("127.0.0.1")
	must(t, err)
	for _, tt := range []struct {
		use   pki.Use
		name  string
		usage []x509.ExtKeyUsage
	}{
		{pki.Node, "node", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{pki.Server, "server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{pki.Client, "client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	} {
		leaf, err := ca.IssueFor(tt.use, tt.name, ips, pki.ValidFor(time.Hour))
		must(t, err)
		cert, key := filepath.Join(dir, tt.name+".pem"), filepath.Join(dir, tt.name+"-key.pem")
		must(t, leaf.Write(cert, key))
		kp, err := tlsfiles.KeyPair(cert, key)
		must(t, err)
		if got := kp.Leaf.ExtKeyUsage; len(got) != len(tt.usage) || got[0] != tt.usage[0] {
			t.Errorf("%s: key usages %v, want %v", tt.name, got, tt.usage)
		}
		node := tt.use == pki.Node
		if tlsfiles.IsNode(kp.Leaf) != node {
			t.Errorf("%s: IsNode %v", tt.name, !node)
		}
		err = tlsfiles.CheckIssuedFor(kp, cert, pool, "127.0.0.1")
		if node && err != nil {
			t.Errorf("%s: CheckIssuedFor: %v", tt.name, err)
		}
		if !node && err == nil {
			t.Errorf("%s: CheckIssuedFor took it as a node certificate", tt.name)
		}
		err = tlsfiles.VerifyNodePeer(tls.ConnectionState{PeerCertificates: []*x509.Certificate{kp.Leaf}})
		if node != (err == nil) || (err != nil && !strings.Contains(err.Error(), tlsfiles.NodeURI)) {
			t.Errorf("%s: VerifyNodePeer: %v", tt.name, err)
		}
	}
	if err := tlsfiles.VerifyNodePeer(tls.ConnectionState{}); err == nil {
		t.Error("VerifyNodePeer took a peer with no certificate")
	}
}

// A certificate with both key usages, as meshpool's node certificates had
// before the route identity, passes every other check and is refused for
// the identity alone.
func TestCheckIssuedForRequiresTheRouteIdentity(t *testing.T) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old CA"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "old node"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	must(t, err)
	leaf, err := x509.ParseCertificate(der)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	err = tlsfiles.CheckIssuedFor(tls.Certificate{Certificate: [][]byte{der}, Leaf: leaf}, "old.pem", pool, "127.0.0.1")
	if err == nil || !strings.Contains(err.Error(), "is not a meshpool node certificate") {
		t.Fatalf("CheckIssuedFor: %v, want the missing route identity", err)
	}
}
