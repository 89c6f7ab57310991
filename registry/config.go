package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
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
	defaultPrefix = keyspace.DefaultPrefix
	defaultTTL    = keyspace.DefaultTTL
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
	if err := keyspace.CheckPrefix(c.Prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := keyspace.CheckTTL(c.TTL); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
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
