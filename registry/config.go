package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config tunes a Registry. The zero value of a field means its default.
type Config struct {
	// Prefix is the meshpool etcd prefix, like "/meshpool": it starts with a
	// '/' and has no trailing '/'. Default "/meshpool".
	Prefix string
	// TTL is the lease TTL: how long a crashed node stays listed. It must be
	// whole seconds and at least 2s. Default 10s.
	TTL time.Duration
	// Logger receives the registry's logs; the caller adds component and node
	// attributes. nil discards.
	Logger *slog.Logger
}

const (
	defaultPrefix = "/meshpool"
	defaultTTL    = 10 * time.Second
	minTTL        = 2 * time.Second
)

// ErrInvalidConfig is matched (errors.Is) by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("registry: invalid config")

// DefaultConfig returns the defaults: prefix "/meshpool", TTL 10s, no logging.
func DefaultConfig() Config {
	return Config{Prefix: defaultPrefix, TTL: defaultTTL}
}

// Validate reports the first thing wrong with c; zero fields are valid and
// mean their default.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case !strings.HasPrefix(c.Prefix, "/"):
		return fmt.Errorf("%w: prefix must start with '/', got %q", ErrInvalidConfig, c.Prefix)
	case strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("%w: prefix must not end with '/', got %q", ErrInvalidConfig, c.Prefix)
	case c.TTL < minTTL:
		return fmt.Errorf("%w: ttl must be at least %s, got %s", ErrInvalidConfig, minTTL, c.TTL)
	case c.TTL%time.Second != 0:
		return fmt.Errorf("%w: ttl must be whole seconds, got %s", ErrInvalidConfig, c.TTL)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = defaultTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
