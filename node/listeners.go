package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
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
