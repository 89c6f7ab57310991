// Package pki makes throw-away certificate authorities and certificates for
// `meshpool dev --secure`, `meshpool secure-setup` and the tests: an ECDSA
// P-256 CA and leaf certificates for IP addresses, written as PEM files.
// It is not a certificate manager: production clusters bring their own CA.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate in PEM form.
	PEM []byte
}

// The lifetimes of what `meshpool secure-setup` writes. The CA outlives
// its leaves by years, so leaves can be renewed from it (one node at a
// time) many times before the CA itself must be replaced.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour // the cluster CA: 10 years
	LeafLifetime = 365 * 24 * time.Hour      // node and etcd certificates: 1 year
)

// Validity is the time range a certificate is valid for.
type Validity struct{ NotBefore, NotAfter time.Time }

// ValidFor returns the range from a minute ago to d from now (the minute
// allows for clocks that differ a little).
func ValidFor(d time.Duration) Validity {
	now := time.Now()
	return Validity{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(d)}
}

// NewCA makes a self-signed CA named name.
func NewCA(name string, v Validity) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot make a CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"meshpool"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot sign the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot parse the CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Leaf is an issued certificate and its key, both in PEM form.
type Leaf struct {
	CertPEM, KeyPEM []byte
}

// Use is what a certificate may be used for.
type Use int

const (
	// Node is a meshpool node's certificate: a TLS server and a TLS
	// client (route connections dial as clients and are dialled as
	// servers; the node is also etcd's client), carrying the route
	// identity tlsfiles.NodeURI that routes require of a peer.
	Node Use = iota
	// Server is a TLS server's certificate only, without the route
	// identity: etcd's. It cannot dial a route, nor be dialled as one.
	Server
	// Client is a TLS client's certificate only, without the route
	// identity: operators' tools that reach etcd (meshpool status).
	Client
)

// Issue signs a node certificate (Node) for name, valid for the given IP
// addresses (subject alternative names). A certificate never outlives its
// CA: v.NotAfter is cut to the CA's.
func (ca *CA) Issue(name string, ips []net.IP, v Validity) (Leaf, error) {
	return ca.IssueFor(Node, name, ips, v)
}

// IssueFor signs a certificate for use, as Issue does.
func (ca *CA) IssueFor(use Use, name string, ips []net.IP, v Validity) (Leaf, error) {
	if v.NotAfter.After(ca.Cert.NotAfter) {
		v.NotAfter = ca.Cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Leaf{}, fmt.Errorf("pki: cannot make a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"meshpool"}},
		NotBefore:    v.NotBefore,
		NotAfter:     v.NotAfter,
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch use {
	case Node:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.URIs = []*url.URL{tlsfiles.NodeURL()}
	case Server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return Leaf{}, fmt.Errorf("pki: unknown certificate use %d", use)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Leaf{}, fmt.Errorf("pki: cannot sign the certificate of %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Leaf{}, fmt.Errorf("pki: cannot encode the key of %s: %w", name, err)
	}
	return Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Write writes the certificate to certFile and the key to keyFile (mode 0600).
func (l Leaf) Write(certFile, keyFile string) error {
	if err := os.WriteFile(certFile, l.CertPEM, 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// WriteCert writes the CA certificate (not its key) to file.
func (ca *CA) WriteCert(file string) error {
	if err := os.WriteFile(file, ca.PEM, 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// WriteKey writes the CA's private key to file (mode 0600). Whoever has it
// can issue certificates the cluster trusts: keep it offline.
func (ca *CA) WriteKey(file string) error {
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// LoadCA reads a CA written by WriteCert and WriteKey, to issue more
// certificates with it.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("pki: %s or %s holds no PEM block", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: certPEM}, nil
}

// IPs parses IP addresses, for Issue.
func IPs(addrs ...string) ([]net.IP, error) {
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, fmt.Errorf("pki: %q is not an IP address", a)
		}
		out = append(out, ip)
	}
	return out, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
