package etcdclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// ErrNotEtcd: something answers at the endpoint, but not etcd's gRPC (an
// HTTP server, a listener that closes at once). Retrying will not help.
var ErrNotEtcd = errors.New("does not speak etcd's gRPC")

// http2Preface is what a gRPC client sends first: the HTTP/2 connection
// preface and an empty SETTINGS frame.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")

// identify says what listens at addr when a plain gRPC call to it failed
// before an HTTP/2 answer: ErrNotEtcd with what it answered, ErrTLS when
// it speaks TLS (an etcd that requires it), or nil when it cannot tell.
func identify(ctx context.Context, addr string) error {
	first, err := firstWords(ctx, addr)
	switch {
	case err != nil:
		return nil // cannot connect: the gRPC error says so
	case bytes.HasPrefix(first, []byte("HTTP/")):
		proto, _, _ := strings.Cut(string(first), " ")
		return fmt.Errorf("%s %w (it answered %s)", addr, ErrNotEtcd, proto)
	case len(first) > 0 && (first[0] == 0x15 || first[0] == 0x16): // a TLS alert or handshake
		return fmt.Errorf("%w: %s speaks TLS (does etcd require TLS? give --etcd-cacert and https:// endpoints)", ErrTLS, addr)
	case len(first) >= 9 && first[3] == 0x04: // an HTTP/2 SETTINGS frame: it speaks HTTP/2
		return nil
	case len(first) > 0:
		return fmt.Errorf("%s %w (it answered %q)", addr, ErrNotEtcd, first[:min(len(first), 16)])
	case speaksTLS(ctx, addr):
		// A TLS server closes a plain connection without a word.
		return fmt.Errorf("%w: %s speaks TLS (does etcd require TLS? give --etcd-cacert and https:// endpoints)", ErrTLS, addr)
	default:
		return fmt.Errorf("%s %w (it closed the connection without answering)", addr, ErrNotEtcd)
	}
}

// firstWords connects to addr, sends what a gRPC client sends first and
// returns the first bytes of the answer: none if the server closed the
// connection or stayed silent.
func firstWords(ctx context.Context, addr string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(http2Preface); err != nil {
		return nil, nil // closed before it read anything
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(conn, buf, 9)
	if n == 0 && err != nil && !errors.Is(err, io.EOF) && !isReset(err) && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		return nil, err
	}
	return buf[:n], nil
}

// speaksTLS reports whether addr completes a TLS handshake or answers one
// with an alert (as when it wants a client certificate).
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	d := &tls.Dialer{Config: tlsfiles.Harden(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})} //nolint:gosec // only asks whether it speaks TLS
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return true
	}
	return strings.Contains(err.Error(), "remote error: tls:")
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
