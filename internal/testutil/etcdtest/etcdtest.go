// Package etcdtest starts embedded etcd servers for tests. Each listens on
// ports fixed when it first starts, so a test can stop it and start it again
// at the same address (an outage), or replace it by an empty one there (a
// lost etcd). It is a package apart from testutil: only the tests that need
// an etcd link the etcd server.
package etcdtest

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/testutil"
)

// Server is an embedded etcd that a test may stop, restart and replace. It
// is stopped when the test ends.
type Server struct {
	t   testing.TB
	mu  sync.Mutex
	cfg embedetcd.Config
	srv *embedetcd.Server // nil while stopped
}

// Start starts an etcd from cfg, in a temporary data dir unless cfg.Dir is
// set, on 127.0.0.1 unless cfg.Host is set, and on free ports unless cfg
// sets them. The ports stay the server's for the whole test.
func Start(t testing.TB, cfg embedetcd.Config) *Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	fixed := cfg.ClientPort != 0 || cfg.PeerPort != 0
	s := &Server{t: t, cfg: cfg}
	t.Cleanup(s.Stop)
	for attempt := 1; ; attempt++ {
		if !fixed {
			s.cfg.ClientPort, s.cfg.PeerPort = testutil.FreePort(t, cfg.Host), testutil.FreePort(t, cfg.Host)
		}
		err := s.start()
		if err == nil {
			return s
		}
		// A port free when picked may be taken before etcd binds it.
		if fixed || !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatal(err)
		}
	}
}

func (s *Server) start() error {
	srv, err := embedetcd.Start(s.cfg)
	if err != nil {
		return err
	}
	s.srv = srv
	return nil
}

// Endpoint is the client address, host:port, the same for the whole test.
func (s *Server) Endpoint() string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.ClientPort))
}

// Embedded is the running server, for what only it offers (EnableAuth); nil
// while stopped.
func (s *Server) Embedded() *embedetcd.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Stop stops the server and waits for it; it does nothing when stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Restart starts the server again, on its ports and data dir, stopping it
// first if it runs: an etcd back from an outage.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Replace stops the server and starts an empty one, with a new data dir, on
// the same ports: an etcd lost and replaced.
func (s *Server) Replace() {
	s.t.Helper()
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Dir = s.t.TempDir()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Client returns a client of endpoint, closed when the test ends. Its dial
// timeout is 5 s and it does not log; change may alter its config.
func Client(t testing.TB, endpoint string, change ...func(*clientv3.Config)) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	for _, f := range change {
		f(&cfg)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// New starts an etcd on free ports and returns it with a client of it.
func New(t testing.TB) (*Server, *clientv3.Client) {
	t.Helper()
	s := Start(t, embedetcd.Config{})
	return s, Client(t, s.Endpoint())
}
