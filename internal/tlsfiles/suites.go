package tlsfiles

import "crypto/tls"

// Suites returns the TLS 1.2 cipher suites meshpool allows, on every
// connection it makes or accepts: ECDHE key exchange (forward secrecy) with
// an AEAD cipher, AES-GCM or ChaCha20-Poly1305. Go's defaults also accept
// the CBC suites (ECDHE with AES-CBC-SHA), which are not AEAD. TLS 1.3's
// suites are all AEAD, and Go does not let them be chosen.
func Suites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// SuiteNames returns the names of Suites, for settings that take names
// (etcd's cipher-suites).
func SuiteNames() []string {
	ids := Suites()
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = tls.CipherSuiteName(id)
	}
	return names
}

// Harden sets cfg to TLS 1.2 with Suites only, or TLS 1.3, and returns it.
// Every tls.Config meshpool builds goes through it.
func Harden(cfg *tls.Config) *tls.Config {
	cfg.MinVersion = tls.VersionTLS12
	cfg.CipherSuites = Suites()
	return cfg
}
