package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

const (
	// readyTimeout bounds how long Start waits for the listeners.
	readyTimeout = 10 * time.Second
	// readyPoll is how long one readiness check may take.
	readyPoll = 100 * time.Millisecond
	// drainTimeout bounds draining the in-process client in Close.
	drainTimeout = 5 * time.Second
	// clientReconnectWait is the in-process client's pause between
	// reconnect attempts; it only reconnects if the server dropped it
	// (e.g. as a slow consumer), since there is no network in between.
	clientReconnectWait = 250 * time.Millisecond
)

// ErrClosed is returned by SetPeers after Close.
var ErrClosed = errors.New("broker: closed")

// Broker is a running embedded nats-server plus the node's own client
// connection to it. Its methods are safe for concurrent use.
type Broker struct {
	log        *slog.Logger
	srv        *server.Server
	nc         *nats.Conn
	ncClosed   chan struct{} // closed by nc's ClosedHandler
	clientURL  string
	clusterURL string
	// clusterHostPort is clusterURL's "host:port", as SetPeers compares it.
	clusterHostPort string
	// routeUser is the user info SetPeers puts in route URLs: the route
	// secret, or nil without one.
	routeUser *url.Userinfo
	// certNotAfter is when the certificate the server presents expires;
	// zero without TLS.
	certNotAfter time.Time

	// template holds the options the server was started with, before the
	// server touched them. It is never handed to the server: the server
	// keeps and mutates the Options it gets (port write-back, baseline
	// defaults), so every start or reload gets a fresh Clone.
	template *server.Options

	mu     sync.Mutex // serialises SetPeers with itself and with Close
	peers  []string   // "host:port" of the peers in the Routes option, sorted
	closed bool       // set by the first Close: later calls wait for it to finish
}

// Start validates cfg, starts the embedded server, waits until it accepts
// client and route connections, and connects the in-process client.
// It fails at once if a port is in use, and after 10s if the server is
// not ready by then.
func Start(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	tmpl := serverOptions(cfg, log.Enabled(context.Background(), slog.LevelDebug))
	inProcPassword, err := applySecurity(tmpl, cfg)
	if err != nil {
		return nil, err
	}
	nlog := newNATSLogger(log, newRedactor(cfg, inProcPassword))
	srv, err := server.NewServer(tmpl.Clone())
	if err != nil {
		return nil, fmt.Errorf("broker: cannot create nats-server: %w", err)
	}
	srv.SetLoggerV2(nlog, tmpl.Debug, false, false)
	srv.Start() // starts the accept loops in goroutines and returns

	b := &Broker{log: log, srv: srv, template: tmpl, ncClosed: make(chan struct{}), certNotAfter: certNotAfter(tmpl)}
	if cfg.Security.RoutePassword != "" {
		b.routeUser = url.UserPassword(RouteUser, cfg.Security.RoutePassword)
	}
	if err := b.waitReady(nlog.fatal); err != nil {
		b.shutdownServer()
		return nil, err
	}
	clientAddr, ok := srv.Addr().(*net.TCPAddr)
	clusterAddr := srv.ClusterAddr()
	if !ok || clusterAddr == nil {
		b.shutdownServer()
		return nil, errors.New("broker: cannot start nats-server: listener addresses unknown")
	}
	b.clientURL = (&url.URL{Scheme: "nats", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(clientAddr.Port))}).String()
	b.clusterHostPort = net.JoinHostPort(cfg.Host, strconv.Itoa(clusterAddr.Port))
	b.clusterURL = routeScheme + "://" + b.clusterHostPort

	if err := b.connect(cfg.Name, inProcPassword); err != nil {
		b.shutdownServer()
		return nil, err
	}
	log.Info("broker started", slog.String("client_url", b.clientURL), slog.String("cluster_url", b.clusterURL),
		slog.String("cluster", cfg.ClusterName), slog.String("server_id", srv.ID()),
		slog.Bool("tls", cfg.Security.CertFile != ""), slog.Bool("route_secret", cfg.Security.RoutePassword != ""),
		slog.Int("users", len(cfg.Security.Users)), slog.Int("max_connections", cfg.MaxConnections),
		slog.Int("max_subscriptions", cfg.MaxSubscriptions), slog.Int64("max_pending", cfg.MaxPending))
	if !b.certNotAfter.IsZero() {
		left := time.Until(b.certNotAfter)
		level := slog.LevelInfo
		if left < certWarnBefore {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "TLS certificate expires in "+left.Round(time.Hour).String()+": renew it before (docs/security.md)",
			slog.String("file", cfg.Security.CertFile), slog.Time("not_after", b.certNotAfter))
	}
	return b, nil
}

// certWarnBefore is how close to its expiry a certificate makes Start warn.
const certWarnBefore = 30 * 24 * time.Hour

// CertNotAfter returns when the certificate this node presents on its
// client and route ports expires, or the zero time without TLS. The
// certificate is read once, at Start: a renewed one takes a restart.
func (b *Broker) CertNotAfter() time.Time { return b.certNotAfter }

func certNotAfter(o *server.Options) time.Time {
	if tc := o.TLSConfig; tc != nil && len(tc.Certificates) > 0 && tc.Certificates[0].Leaf != nil {
		return tc.Certificates[0].Leaf.NotAfter
	}
	return time.Time{}
}

// serverOptions builds the options template for cfg (without routes).
func serverOptions(cfg Config, debug bool) *server.Options {
	return &server.Options{
		ServerName:      cfg.Name,
		Host:            cfg.Host,
		Port:            cfg.ClientPort,
		ClientAdvertise: advertiseAddr(cfg.Host, cfg.ClientPort),
		Cluster: server.ClusterOpts{
			Name:      cfg.ClusterName,
			Host:      cfg.Host,
			Port:      cfg.ClusterPort,
			Advertise: advertiseAddr(cfg.Host, cfg.ClusterPort),
		},
		// No HTTP monitoring port and no JetStream: the node serves HTTP
		// itself (Server().HandleVarz and friends) and keeps no streams.
		NoSigs: true, // the binary owns signal handling
		// NoLog keeps the server from ever replacing our logger with its
		// own stderr logger (ConfigureLogger returns early when set).
		NoLog: true,
		Debug: debug,
		// Room for a task's payload or result at its largest
		// (message.MaxData) and its envelope.
		MaxPayload: message.MaxSize,
		// Client connections, and per connection its subscriptions and
		// pending bytes: per server, not per user or role (nats-server
		// has those only in JWT accounts). See Config.
		MaxConn:    cfg.MaxConnections,
		MaxSubs:    cfg.MaxSubscriptions,
		MaxPending: cfg.MaxPending,
	}
}

// advertiseAddr returns the address advertised for a listener on host:port.
// With a random port the port is left out: nats-server then completes the
// advertise address with the port it actually bound (parseHostPort's
// default port is the resolved listen port), so no port has to be picked
// before start and nothing has to be reloaded after.
func advertiseAddr(host string, port int) string {
	if port > 0 {
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return "[" + host + "]"
	}
	return host
}

// waitReady waits until the server accepts client and route connections,
// or reports why it cannot.
func (b *Broker) waitReady(fatal <-chan string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case msg := <-fatal:
			return fmt.Errorf("broker: cannot start nats-server: %s", msg)
		default:
		}
		if b.srv.ReadyForConnections(readyPoll) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker: cannot start nats-server: not ready for connections after %s", readyTimeout)
		}
	}
}

// connect opens the node's in-process client connection; with client
// users it authenticates as the in-process user with password.
func (b *Broker) connect(name, password string) error {
	log := b.log.With(slog.String("origin", "nats-client"))
	var auth []nats.Option
	if password != "" {
		auth = append(auth, nats.UserInfo(inProcessUser, password))
	}
	nc, err := nats.Connect(b.clientURL, append(auth,
		nats.InProcessServer(b.srv),
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(clientReconnectWait),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("client disconnected", slog.Any("err", err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("client reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{slog.Any("err", err)}
			if sub != nil {
				attrs = append(attrs, slog.String("subject", sub.Subject))
			}
			log.Error("client error", attrs...)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.ncClosed) }),
	)...)
	if err != nil {
		return fmt.Errorf("broker: cannot connect in-process client: %w", err)
	}
	b.nc = nc
	return nil
}

// Conn returns the node's own client connection to the embedded server.
// Close drains and closes it; callers must not close it or replace its
// ClosedHandler (Close waits for that handler, up to the drain timeout).
func (b *Broker) Conn() *nats.Conn { return b.nc }

// HasInterest reports whether any client of the cluster, on this server or
// on a routed one as far as this server has heard, subscribes to subject.
// Every meshpool user lives in the server's global account.
func (b *Broker) HasInterest(subject string) bool {
	return b.srv.GlobalAccount().SubscriptionInterest(subject)
}

// ClientURL returns "nats://IP:port" of the client listener, with the
// actual port.
func (b *Broker) ClientURL() string { return b.clientURL }

// ClusterURL returns "nats-route://IP:port" of the route listener, with the
// actual port. This is what other nodes pass to SetPeers.
func (b *Broker) ClusterURL() string { return b.clusterURL }

// Server returns the embedded server, e.g. for its HandleVarz,
// HandleRoutez, ... monitoring handlers. Do not shut it down or reload it
// directly; use Close and SetPeers.
func (b *Broker) Server() *server.Server { return b.srv }

// Close drains and closes the in-process client (bounded by the drain
// timeout), shuts the server down and waits until it has stopped.
// It is idempotent and safe to call concurrently; every call returns once
// the server has stopped.
func (b *Broker) Close() {
	b.mu.Lock() // waits for a SetPeers in progress
	first := !b.closed
	b.closed = true
	b.mu.Unlock()
	if !first {
		b.srv.WaitForShutdown()
		return
	}
	b.closeClient()
	b.shutdownServer()
	b.log.Info("broker stopped")
}

func (b *Broker) closeClient() {
	if err := b.nc.Drain(); err != nil {
		b.log.Warn("cannot drain client connection", slog.Any("err", err))
		b.nc.Close()
	}
	t := time.NewTimer(drainTimeout + time.Second)
	defer t.Stop()
	select {
	case <-b.ncClosed:
	case <-t.C:
		b.log.Warn("client connection not closed after drain timeout, closing it")
		b.nc.Close()
	}
}

func (b *Broker) shutdownServer() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}
