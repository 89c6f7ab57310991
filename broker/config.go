package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
)

// Default values used by DefaultConfig and for zero fields of Config.
const (
	DefaultClientPort  = 4222
	DefaultClusterPort = 6222
	DefaultClusterName = "meshpool"
)

// RandomPort asks for a free port chosen by the operating system.
const RandomPort = -1

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("broker: invalid config")

// Config describes the embedded nats-server of one node.
type Config struct {
	// Name is the server name; meshpool uses the node ID. Required.
	Name string
	// Host is the IP address to listen on and to advertise to clients and
	// peers, e.g. "127.0.0.2". Required; it must be a specific address,
	// not 0.0.0.0 or ::, because peers connect to what is advertised.
	// It is used in its canonical form (net.IP.String).
	Host string
	// ClientPort is the NATS client port: 0 means DefaultClientPort,
	// RandomPort (-1) a free port chosen at start (tests).
	ClientPort int
	// ClusterPort is the route port: 0 means DefaultClusterPort,
	// RandomPort (-1) a free port chosen at start (tests).
	ClusterPort int
	// ClusterName is the fixed NATS cluster name: "" means DefaultClusterName.
	// All nodes of one pool must use the same name.
	ClusterName string
	// Security is the TLS, route secret and client users; the zero value
	// is an open server (see Security).
	Security Security
	// MaxConnections bounds the client connections the server holds, the
	// node's own included; one more is refused ("maximum connections
	// exceeded"). 0 means DefaultMaxConnections, or half the process's
	// open-file limit when that is less, so that routes, etcd, HTTP and
	// the tasks' commands still get descriptors when clients hold theirs.
	// Routes do not count.
	MaxConnections int
	// MaxSubscriptions bounds the subscriptions of one client connection,
	// the node's own included; one more is refused ("maximum subscriptions
	// exceeded") and the connection stays. 0 means DefaultMaxSubscriptions;
	// otherwise at least 32, room for the node's own. Routes, which carry
	// the interest of a peer's clients, are not bound.
	MaxSubscriptions int
	// MaxPending bounds the bytes the server holds for one client that
	// does not read fast enough; beyond, it disconnects the client as a
	// slow consumer. 0 means DefaultMaxPending.
	MaxPending int64
	// Logger receives the broker's log lines, nats-server's own (with
	// origin=nats-server; its debug lines only if Logger is enabled for
	// slog.LevelDebug) and the in-process client's connection events
	// (origin=nats-client). Pass a child logger carrying the component and
	// node attributes. nil discards everything.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the default ports and cluster name;
// Name and Host must still be set.
func DefaultConfig() Config {
	return Config{
		ClientPort:  DefaultClientPort,
		ClusterPort: DefaultClusterPort,
		ClusterName: DefaultClusterName,
	}
}

// Validate reports the first problem with c. Every error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: name must not be empty", ErrInvalidConfig)
	}
	ip := net.ParseIP(c.Host)
	if ip == nil {
		return fmt.Errorf("%w: host must be an IP address, got %q", ErrInvalidConfig, c.Host)
	}
	if ip.IsUnspecified() {
		return fmt.Errorf("%w: host must be a specific IP address to advertise, got %q", ErrInvalidConfig, c.Host)
	}
	if err := validPort("client port", c.ClientPort); err != nil {
		return err
	}
	if err := validPort("cluster port", c.ClusterPort); err != nil {
		return err
	}
	if err := c.validLimits(); err != nil {
		return err
	}
	if err := c.Security.Validate(); err != nil {
		return err
	}
	d := c.withDefaults()
	if d.ClientPort > 0 && d.ClientPort == d.ClusterPort {
		return fmt.Errorf("%w: client port and cluster port must differ, both are %d", ErrInvalidConfig, d.ClientPort)
	}
	return nil
}

func validPort(what string, port int) error {
	if port < RandomPort || port > 65535 {
		return fmt.Errorf("%w: %s must be between 1 and 65535, 0 (default) or -1 (random), got %d",
			ErrInvalidConfig, what, port)
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.ClusterPort == 0 {
		c.ClusterPort = DefaultClusterPort
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if ip := net.ParseIP(c.Host); ip != nil {
		c.Host = ip.String() // canonical form, as peers compare it
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = maxConnections(openFileLimit())
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
