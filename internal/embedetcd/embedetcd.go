// Package embedetcd runs a single-member etcd server inside the process, for
// `meshpool dev` and for tests. It is not meant for production: data is kept
// without fsync.
package embedetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// Config says where the embedded etcd keeps its data and listens.
type Config struct {
	// Dir is the data directory. Required.
	Dir string
	// Host is the IP both listeners bind to. Default 127.0.0.1.
	Host string
	// ClientPort and PeerPort are the listener ports; 0 picks a free port.
	ClientPort, PeerPort int
	// StartTimeout bounds how long Start waits for the server to be ready.
	StartTimeout time.Duration
	// CertFile and KeyFile, when set, make the client listener serve TLS
	// with this certificate; with ClientCAFile, clients must present a
	// certificate signed by that CA.
	CertFile, KeyFile, ClientCAFile string
	// QuotaBackendBytes is the database size at which etcd raises its
	// NOSPACE alarm and refuses writes; 0 is etcd's default (2 GiB).
	QuotaBackendBytes int64
	// LogLevel is etcd's own zap level (debug, info, warn, error, fatal).
	// Default fatal: etcd logs a normal shutdown as errors.
	LogLevel string
}

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	endpoint  string
	closeOnce sync.Once
}

// Start launches the server and waits until it serves clients. Ports it
// picks itself are free when picked but may be taken before etcd binds them
// (tests run in parallel); it then tries again with other ports.
func Start(cfg Config) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := start(cfg)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || cfg.ClientPort != 0 || cfg.PeerPort != 0 || attempt == 5 {
			return s, err
		}
	}
}

func start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedetcd: data dir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "fatal"
	}
	clientPort, err := portOrFree(cfg.Host, cfg.ClientPort)
	if err != nil {
		return nil, err
	}
	peerPort, err := portOrFree(cfg.Host, cfg.PeerPort)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.CertFile != "" {
		scheme = "https"
	}
	curl := url.URL{Scheme: scheme, Host: net.JoinHostPort(cfg.Host, strconv.Itoa(clientPort))}
	purl := url.URL{Scheme: "http", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(peerPort))}

	ec := embed.NewConfig()
	ec.Name = "default"
	ec.Dir = cfg.Dir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.UnsafeNoFsync = true
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	if cfg.CertFile != "" {
		ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.KeyFile = cfg.CertFile, cfg.KeyFile
		ec.CipherSuites = tlsfiles.SuiteNames()
		if cfg.ClientCAFile != "" {
			ec.ClientTLSInfo.TrustedCAFile, ec.ClientTLSInfo.ClientCertAuth = cfg.ClientCAFile, true
		}
	}
	ec.LogLevel = cfg.LogLevel
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLogger(cfg.LogLevel))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: cannot start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedetcd: cannot start: %w", err)
	case <-time.After(cfg.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedetcd: not ready after %s", cfg.StartTimeout)
	}
	return &Server{etcd: e, endpoint: curl.Host}, nil
}

// Endpoint is the client address, host:port.
func (s *Server) Endpoint() string { return s.endpoint }

// Close stops the server and waits for it. Safe to call twice. Close the
// clients first: etcd waits for open client streams before it stops.
func (s *Server) Close() { s.closeOnce.Do(s.etcd.Close) }

func portOrFree(host string, port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("embedetcd: cannot find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func zapLogger(level string) *zap.Logger {
	zc := zap.NewProductionConfig()
	if err := zc.Level.UnmarshalText([]byte(level)); err != nil {
		zc.Level = zap.NewAtomicLevelAt(zap.FatalLevel)
	}
	zc.Sampling = nil
	lg, err := zc.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}
