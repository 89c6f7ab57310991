package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
)

// NodeURI is the route identity: the URI subject alternative name every
// meshpool node certificate carries, and that a route requires of the peer
// on both sides, after the usual checks (issued by the cluster CA; when
// dialling, for the address dialled). A certificate from the same CA
// without it, such as etcd's server certificate or an operator's client
// certificate, cannot route in, and a listener presenting one is sent
// nothing: the handshake fails before any route credential is sent.
const NodeURI = "urn:meshpool:node"

// NodeURL returns NodeURI as a URL, for a certificate template.
func NodeURL() *url.URL { return &url.URL{Scheme: "urn", Opaque: "meshpool:node"} }

// IsNode reports whether cert carries the route identity.
func IsNode(cert *x509.Certificate) bool {
	for _, u := range cert.URIs {
		if u.String() == NodeURI {
			return true
		}
	}
	return false
}

// VerifyNodePeer is a tls.Config.VerifyConnection for routes: it refuses a
// peer whose certificate lacks the route identity. The chain (and, on the
// dialling side, the address) has been verified already.
func VerifyNodePeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the peer presented no certificate", ErrInvalid)
	}
	if leaf := cs.PeerCertificates[0]; !IsNode(leaf) {
		return fmt.Errorf("%w: the peer's certificate (%q) is not a meshpool node's: it lacks the URI SAN %s",
			ErrInvalid, leaf.Subject.CommonName, NodeURI)
	}
	return nil
}
