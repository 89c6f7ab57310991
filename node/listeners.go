package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshpool/meshpool/broker"
)

// httpListeners are the node's HTTP listeners: main on --http-addr and
// --http-port, metrics on --metrics-addr (nil without it).
type httpListeners struct {
	main, metrics net.Listener
}

func (l *httpListeners) Close() {
	l.main.Close()
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// url is the metrics listener's URL, or "" without one.
func (l *httpListeners) url() string {
	if l.metrics == nil {
		return ""
	}
	return "http://" + l.metrics.Addr().String()
}

// listenHTTP opens the HTTP listeners and returns the URL to register:
// the advertise IP when listening on every address.
func (n *Node) listenHTTP() (*httpListeners, string, error) {
	host := n.cfg.HTTPAddr
	if host == "" {
		host = n.cfg.Advertise
	}
	main, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(max(n.cfg.HTTPPort, 0))))
	if err != nil {
		return nil, "", fmt.Errorf("node: cannot listen for HTTP: %w", err)
	}
	l := &httpListeners{main: main}
	if n.cfg.MetricsAddr != "" {
		if l.metrics, err = net.Listen("tcp", n.cfg.MetricsAddr); err != nil {
			main.Close()
			return nil, "", fmt.Errorf("node: cannot listen for HTTP on --metrics-addr: %w", err)
		}
	}
	addr := main.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		addr = &net.TCPAddr{IP: net.ParseIP(n.cfg.Advertise), Port: addr.Port}
	}
	return l, "http://" + addr.String(), nil
}

// MetricsURL returns "http://IP:port" of the --metrics-addr listener while
// the node runs, else "".
func (n *Node) MetricsURL() string {
	if p := n.parts.Load(); p != nil {
		return p.metricsURL
	}
	return ""
}

// serveHTTP serves l in bg and returns the function that shuts the servers
// down. Without a metrics listener everything is on the main one.
func (n *Node) serveHTTP(bg *group, br *broker.Broker, l *httpListeners) (stop func()) {
	log := n.logger("app")
	st := newStreams(br.Conn(), log, &n.streamRefused)
	var servers []*http.Server
	serve := func(h http.Handler, ln net.Listener) {
		ln = capConns(ln, maxHTTPConns, &n.httpRefused)
		srv := newHTTPServer(h)
		srv.RegisterOnShutdown(st.close) // Shutdown would otherwise wait for open streams
		servers = append(servers, srv)
		bg.Go(func(context.Context) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "err", err)
			}
		})
	}
	if l.metrics == nil {
		serve(n.httpHandler(br, st), l.main)
	} else {
		serve(n.healthHandler(http.NewServeMux()), l.main)
		serve(n.httpHandler(br, st), l.metrics)
		log.Info("operators' endpoints on their own listener", "metrics_url", l.url())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(ctx)
		}
	}
}

// maxHTTPConns bounds the open connections of each HTTP listener: idle
// keep-alive connections must not take the descriptors the node's NATS
// clients and routes need (1,024 idle /healthz connections at a descriptor
// limit of 1,024 stopped every new NATS client). Prometheus, a prober, a
// few pages and /stream's 16 clients need far fewer.
const maxHTTPConns = 256

// capConns wraps ln so that at most max connections are open at once: one
// more is closed as soon as it is accepted (the client sees it at once,
// and the kernel's backlog does not fill), and counted in refused.
func capConns(ln net.Listener, max int, refused *atomic.Int64) net.Listener {
	return &capListener{Listener: ln, slots: make(chan struct{}, max), refused: refused}
}

type capListener struct {
	net.Listener
	slots   chan struct{}
	refused *atomic.Int64
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &cappedConn{Conn: c, slots: l.slots}, nil
		default:
			l.refused.Add(1)
			_ = c.Close()
		}
	}
}

// cappedConn gives its slot back when closed, once.
type cappedConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *cappedConn) Close() error {
	// The slot first: a client that sees this close and dials again
	// must find it free.
	c.once.Do(func() { <-c.slots })
	return c.Conn.Close()
}
