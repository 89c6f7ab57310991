package election

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
)

// Config tunes an Election. The zero value of a field means its default.
type Config struct {
	// Prefix is the meshpool etcd prefix, like "/meshpool": it starts with a
	// '/' and has no trailing '/'. The election keys live under
	// keyspace.Election(Prefix)+"/". Default "/meshpool".
	Prefix string
	// TTL is the session TTL: how long a crashed leader keeps its role. It
	// must be whole seconds and at least 2s. Default 10s.
	TTL time.Duration
	// Logger receives the election's logs; the caller adds component and
	// node attributes. nil discards.
	Logger *slog.Logger
}

const (
	defaultPrefix = keyspace.DefaultPrefix
	defaultTTL    = keyspace.DefaultTTL
)

// ErrInvalidConfig is matched (errors.Is) by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("election: invalid config")

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

// timing holds the internal time bounds, all derived from the TTL so that a
// short TTL (tests) also means short timeouts.
type timing struct {
	// request bounds each etcd call made outside of a campaign: grant,
	// resign, revoke, the leadership check. Half the TTL, within 1s..5s.
	request time.Duration
	// minBackoff and maxBackoff bound the wait between failed attempts.
	minBackoff, maxBackoff time.Duration
}

func newTiming(ttl time.Duration) timing {
	half := min(max(ttl/2, time.Second), 5*time.Second)
	return timing{request: half, minBackoff: 100 * time.Millisecond, maxBackoff: half}
}
