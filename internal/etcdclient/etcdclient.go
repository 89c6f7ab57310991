// Package etcdclient builds the etcd client every meshpool component shares,
// with the settings that make an outage short: dead connections are noticed
// by keep-alive pings, and reconnection is retried every couple of seconds
// rather than gRPC's default back-off, which grows to two minutes. It also
// holds the client's security settings (TLS, user and password) and the
// start-up check that tells a wrong certificate or password from an etcd
// that is just not up yet.
package etcdclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// Options say how to reach etcd and as whom.
type Options struct {
	// Endpoints are host:port, http://host:port or https://host:port.
	Endpoints []string
	// DialTimeout bounds the connection and, with a user, the
	// authentication that clientv3.New does itself.
	DialTimeout time.Duration
	// CACert is a PEM file of the CA that signed etcd's server
	// certificate. With CACert, Cert or an https:// endpoint the client
	// speaks TLS (system roots when CACert is empty).
	CACert string
	// Cert and Key are the client certificate and key, for an etcd that
	// requires client certificates (--client-cert-auth).
	Cert, Key string
	// Username and Password authenticate to an etcd with auth enabled.
	// The password is never logged or put in an error.
	Username, Password string
}

// TLS reports whether the client speaks TLS to etcd.
func (o Options) TLS() bool {
	if o.CACert != "" || o.Cert != "" {
		return true
	}
	for _, e := range o.Endpoints {
		if strings.HasPrefix(e, "https://") {
			return true
		}
	}
	return false
}

// Validate checks the options that can be checked without etcd, in words
// a user can act on: the endpoints' form (see CheckEndpoint), the pairs of
// settings, and that the TLS files can be read.
func (o Options) Validate() error {
	var errs []error
	if len(o.Endpoints) == 0 {
		errs = append(errs, errors.New("at least one etcd endpoint is required"))
	}
	for _, e := range o.Endpoints {
		if err := CheckEndpoint(e); err != nil {
			errs = append(errs, err)
		}
	}
	if (o.Cert == "") != (o.Key == "") {
		errs = append(errs, errors.New("etcd client certificate: give both --etcd-cert and --etcd-key"))
	}
	if (o.Username == "") != (o.Password == "") {
		errs = append(errs, errors.New("etcd auth: give both --etcd-user and a password (--etcd-password-file or MESHPOOL_ETCD_PASSWORD)"))
	}
	tlsEndpoints := 0
	for _, e := range o.Endpoints {
		if strings.HasPrefix(e, "https://") {
			tlsEndpoints++
		}
	}
	if tlsEndpoints > 0 && tlsEndpoints < len(o.Endpoints) {
		errs = append(errs, errors.New("etcd endpoints: all https:// or none"))
	}
	if o.TLS() && tlsEndpoints == 0 {
		for _, e := range o.Endpoints {
			if strings.HasPrefix(e, "http://") {
				errs = append(errs, fmt.Errorf("etcd endpoint %q: TLS is configured, use https:// or host:port", e))
			}
		}
	}
	if len(errs) == 0 && o.TLS() {
		// The files are read now, so a missing or unreadable one is a
		// configuration error, not a failure to connect.
		if _, err := o.tlsConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tlsConfig loads the TLS files, or returns nil without TLS.
func (o Options) tlsConfig() (*tls.Config, error) {
	if !o.TLS() {
		return nil, nil
	}
	cfg, err := tlsfiles.ClientConfig(o.CACert, o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("etcd %w", err)
	}
	return cfg, nil
}

// New returns a client for endpoints (host:port), without TLS or auth. It
// does not wait for a connection: the first request does, within its own
// context.
func New(endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
	return Open(Options{Endpoints: endpoints, DialTimeout: dialTimeout})
}

// Open returns a client built from o. Without a user it does not wait for
// a connection; with one, clientv3 authenticates at once, within
// DialTimeout, and a failure comes back classified (see Check).
func Open(o Options) (*clientv3.Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		DialTimeout:          o.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tc,
		Username:             o.Username,
		Password:             o.Password,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
		// The client's own log is chatty and says nothing our components
		// do not log themselves, with context, when a request fails.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, classify(o, fmt.Errorf("cannot create etcd client for %v: %w", o.Endpoints, err), nil)
	}
	return cli, nil
}
