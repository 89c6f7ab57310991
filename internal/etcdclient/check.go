package etcdclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// What Connect's errors are about, for errors.Is.
var (
	// ErrTLS: the TLS handshake with etcd failed (a CA that does not match
	// the server's certificate, a client certificate etcd refuses, an
	// expired certificate, TLS on one side only). Retrying will not help.
	ErrTLS = errors.New("etcd TLS failed")
	// ErrAuth: etcd refused the user or password, or the user may not read
	// the cluster's keys. Retrying will not help.
	ErrAuth = errors.New("etcd authentication failed")
	// ErrUnreachable: no endpoint answered in time. It may come up later.
	ErrUnreachable = errors.New("etcd unreachable")
)

// probeTimeout bounds the TLS probe of one endpoint.
const probeTimeout = 3 * time.Second

// Connect opens a client and makes a first request, a read of key, so that
// what cannot work is reported at once, in one line that says whether TLS
// or authentication failed (ErrTLS, ErrAuth), or that what answers is not
// etcd (ErrNotEtcd: an HTTP server, a listener that closes at once). When
// no endpoint answers it returns ErrUnreachable; without a user it also
// returns a usable client then (its requests wait for etcd, as components
// expect), with a user there is none (clientv3 must authenticate first)
// and Connect keeps trying, logging to log, until etcd answers or ctx
// ends. Each attempt takes at most DialTimeout plus a few seconds.
func Connect(ctx context.Context, o Options, key string, log *slog.Logger) (*clientv3.Client, error) {
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		cli, err := connect(ctx, o, key)
		if err == nil || !errors.Is(err, ErrUnreachable) {
			return cli, err
		}
		if o.Username == "" {
			// Requests wait for etcd: components retry with back-off.
			if cli, oerr := Open(o); oerr == nil {
				return cli, err
			}
			return nil, err
		}
		if log == nil {
			return nil, err
		}
		log.Warn("etcd unreachable, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

func connect(ctx context.Context, o Options, key string) (*clientv3.Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := probe(ctx, o); err != nil {
		return nil, err
	}
	cli, err := Open(o)
	if err != nil {
		return nil, err
	}
	timeout := o.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Get(rctx, key, clientv3.WithLimit(1), clientv3.WithKeysOnly()); err != nil {
		cli.Close()
		return nil, classify(o, fmt.Errorf("first request to etcd at %s: %w", strings.Join(o.Endpoints, ","), err), nil)
	}
	return cli, nil
}

// classify wraps err with ErrAuth, ErrTLS or ErrUnreachable when it is one
// of those; probeErr is the transport's own reason, if known.
func classify(o Options, err error, probeErr error) error {
	switch {
	case o.Username == "" && (errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrPermissionDenied)):
		return fmt.Errorf("%w: etcd requires a user: give --etcd-user and a password (--etcd-password-file or MESHPOOL_ETCD_PASSWORD): %w", ErrAuth, err)
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrUserEmpty),
		errors.Is(err, rpctypes.ErrUserNotFound), errors.Is(err, rpctypes.ErrInvalidAuthToken),
		errors.Is(err, rpctypes.ErrAuthOldRevision):
		return fmt.Errorf("%w as user %q (check --etcd-user and the password): %w", ErrAuth, o.Username, err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("%w: user %q may not read the cluster's keys (grant its role read-write on the prefix): %w", ErrAuth, o.Username, err)
	case tlsfiles.IsHandshakeError(err.Error()):
		return fmt.Errorf("%w: %w", ErrTLS, err)
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "Unavailable"),
		strings.Contains(err.Error(), "context deadline exceeded"):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// probe makes one plain gRPC call to every endpoint with the client's TLS
// settings, without waiting for a connection to become ready, so that a
// failed handshake comes back with its reason instead of as a timeout
// (clientv3 retries and reports only the deadline). It fails only when no
// endpoint answers: with ErrTLS if one of them failed its handshake.
func probe(ctx context.Context, o Options) error {
	tc, err := o.tlsConfig()
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	errs := make([]error, len(o.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range o.Endpoints {
		wg.Go(func() {
			errs[i] = probeOne(ctx, ep, creds)
			if errs[i] != nil && (tc == nil && (strings.Contains(errs[i].Error(), "server preface") || isReset(errs[i])) ||
				tc != nil && strings.Contains(errs[i].Error(), "does not look like a TLS handshake")) {
				// Something answered, but not with HTTP/2 (or TLS), or
				// closed the connection while the preface was being
				// written (a broken pipe instead of an EOF): say what it
				// is. identify leaves the error alone when it finds HTTP/2.
				if what := identify(ctx, hostPort(ep)); what != nil {
					errs[i] = what
					return
				}
			}
			if errs[i] != nil && tc != nil && !tlsfiles.IsHandshakeError(errs[i].Error()) {
				// With TLS 1.3 etcd refuses a client certificate after
				// the client's side of the handshake is done: gRPC may
				// then see only a broken pipe. Look for the alert.
				if terr := tlsAlert(ctx, hostPort(ep), tc); terr != nil {
					errs[i] = terr
				}
			}
		})
	}
	wg.Wait()
	var tlsErr, notEtcd, other error
	for i, err := range errs {
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrNotEtcd) || errors.Is(err, ErrTLS) {
			// identify named the endpoint.
			if notEtcd == nil && errors.Is(err, ErrNotEtcd) {
				notEtcd = err
			} else if tlsErr == nil && errors.Is(err, ErrTLS) {
				tlsErr = err
			}
			continue
		}
		err = fmt.Errorf("%s: %w", o.Endpoints[i], err)
		if tlsErr == nil && tlsfiles.IsHandshakeError(err.Error()) {
			tlsErr = err
		} else if other == nil {
			other = err
		}
	}
	if notEtcd != nil {
		return notEtcd
	}
	if tlsErr != nil {
		if errors.Is(tlsErr, ErrTLS) {
			return tlsErr
		}
		return fmt.Errorf("%w: %w", ErrTLS, tlsErr)
	}
	if tc == nil && other != nil && strings.Contains(other.Error(), "server preface") {
		return fmt.Errorf("%w: %w (does etcd require TLS? give --etcd-cacert and https:// endpoints)", ErrTLS, other)
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, other)
}

func hostPort(endpoint string) string {
	return strings.TrimPrefix(strings.TrimPrefix(endpoint, "https://"), "http://")
}

// tlsAlert makes a TLS connection to addr and waits briefly for the
// server's first word: a TLS alert (a refused client certificate) comes
// back as the error; silence, as etcd waits for the client to speak, is
// nil, and so is a failure to connect at all (the gRPC probe reports it).
func tlsAlert(ctx context.Context, addr string, tc *tls.Config) error {
	cfg := tc.Clone()
	cfg.NextProtos = []string{"h2"}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if tlsfiles.IsHandshakeError(err.Error()) {
			return err
		}
		return nil
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err != nil && tlsfiles.IsHandshakeError(err.Error()) {
		return err
	}
	return nil
}

func probeOne(ctx context.Context, endpoint string, creds credentials.TransportCredentials) error {
	addr := hostPort(endpoint)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// Status needs no authentication; any answer means the transport works.
	_, err = pb.NewMaintenanceClient(conn).Status(ctx, &pb.StatusRequest{}, grpc.WaitForReady(false))
	if err != nil && !isTransportError(err) {
		return nil
	}
	return err
}

// isTransportError reports whether a gRPC call failed before etcd answered.
func isTransportError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Unavailable") || strings.Contains(s, "DeadlineExceeded") ||
		strings.Contains(s, "deadline exceeded") || tlsfiles.IsHandshakeError(s)
}
