package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/pki"
)

// TestLifetimes: the CA outlives its leaves by years.
func TestLifetimes(t *testing.T) {
	if pki.CALifetime-pki.LeafLifetime < 5*365*24*time.Hour {
		t.Errorf("the CA (%s) outlives its certificates (%s) by less than 5 years", pki.CALifetime, pki.LeafLifetime)
	}
}

// TestIssueNeverOutlivesCA: a certificate asked for longer than its CA
// lasts ends with the CA.
func TestIssueNeverOutlivesCA(t *testing.T) {
	ca, err := pki.NewCA("short CA", pki.ValidFor(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("node", nil, pki.ValidFor(pki.LeafLifetime))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(leaf.CertPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("the certificate expires at %s, its CA at %s", c.NotAfter, ca.Cert.NotAfter)
	}
}
