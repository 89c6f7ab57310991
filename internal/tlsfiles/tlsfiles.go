// Package tlsfiles loads the PEM files of meshpool's TLS settings and checks
// them up front, so a wrong, expired or mismatched certificate is reported
// at start-up in one line naming the file, not as a handshake failure later.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error of this package about a file's content.
var ErrInvalid = errors.New("tls")

// CAPool reads a PEM file of one or more CA certificates.
func CAPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read CA file: %w", ErrInvalid, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalid, file)
	}
	return pool, nil
}

// KeyPair reads a certificate and its key and checks that the certificate
// is valid now.
func KeyPair(certFile, keyFile string) (tls.Certificate, error) {
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: cannot load certificate %s with key %s: %w", ErrInvalid, certFile, keyFile, err)
	}
	leaf := kp.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: cannot parse certificate %s: %w", ErrInvalid, certFile, err)
		}
		kp.Leaf = leaf
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s expired at %s", ErrInvalid, certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s is not valid before %s", ErrInvalid, certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return kp, nil
}

// CheckIssuedFor checks that kp's certificate is a node certificate
// issued by a CA in pool for ip: usable as a TLS server and client, with
// the route identity NodeURI (as a NATS route needs).
func CheckIssuedFor(kp tls.Certificate, certFile string, pool *x509.CertPool, ip string) error {
	inter := x509.NewCertPool()
	for _, der := range kp.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("%w: certificate %s does not verify against the CA: %w", ErrInvalid, certFile, err)
		}
	}
	if !IsNode(kp.Leaf) {
		return fmt.Errorf("%w: certificate %s is not a meshpool node certificate: it lacks the URI SAN %s that routes require "+
			"(meshpool secure-setup makes node certificates; --renew makes new ones from the same CA)", ErrInvalid, certFile, NodeURI)
	}
	if ip != "" {
		if err := kp.Leaf.VerifyHostname(ip); err != nil {
			return fmt.Errorf("%w: certificate %s is not for this node's address %s: %w (put %s in its IP SANs)",
				ErrInvalid, certFile, ip, err, ip)
		}
	}
	return nil
}

// ClientConfig returns a TLS client configuration trusting caFile (system
// roots if ""), presenting certFile/keyFile if given, hardened (Harden).
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := Harden(&tls.Config{})
	if caFile != "" {
		pool, err := CAPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both its certificate and its key file", ErrInvalid)
	}
	if certFile != "" {
		kp, err := KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

// IsHandshakeError reports whether err looks like a failed TLS handshake or
// certificate check, on either side, by its text: gRPC and NATS hand these
// errors on as strings.
func IsHandshakeError(msg string) bool {
	for _, s := range []string{"x509:", "tls:", "certificate", "handshake"} {
		if containsFold(msg, s) {
			return true
		}
	}
	return false
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}
