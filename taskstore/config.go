package taskstore

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshpool/meshpool/internal/keyspace"
)

// Config tunes a Writer. For MaxBatch, MaxInFlight, MaxLeaseKeys and Timeout the zero
// value means the default; for Retention zero is meaningful (delete at
// completion), so start from DefaultConfig.
type Config struct {
	// MaxBatch is the most writes one txn carries. etcd refuses a txn with
	// more than its --max-txn-ops (default 128) operations in its success
	// branch (the fence compare and the failure branch are counted apart:
	// the limit applies to the largest of the three), so keep MaxBatch at or
	// below the server's setting. Default 128.
	MaxBatch int
	// MaxInFlight is how many txns may be outstanding at once. A second
	// txn starts only while a full batch waits (see Writer.Run). Default 4.
	MaxInFlight int
	// Retention is how long a Done record is kept before etcd deletes it;
	// 0 deletes the record at completion. Records may stay up to a tenth
	// longer (at least 1s, at most 1m more): completions share one lease per
	// time bucket (up to MaxLeaseKeys of them). Default 10m, at most
	// MaxRetention.
	Retention time.Duration
	// MaxLeaseKeys is the most records kept under one lease. etcd deletes
	// a lease's records in one raft apply when it expires, stalling every
	// other request meanwhile (about 0.7 s for 100,000); a new lease is granted
	// after MaxLeaseKeys completions as well as every time bucket, so that
	// no expiry stalls etcd for long. The records of one txn share a lease,
	// so it is at least MaxBatch. Default 1,000.
	MaxLeaseKeys int
	// FailedRetention is how long a Failed or Cancelled record is kept
	// (the dead-letter list), as Retention is for Done ones. Default a
	// week, at most MaxRetention.
	FailedRetention time.Duration
	// Timeout bounds each txn, lease grant included. Default 5s.
	Timeout time.Duration
	// Logger receives the Writer's logs; the caller adds component and node
	// attributes. nil discards.
	Logger *slog.Logger
}

const (
	defaultMaxBatch    = 128
	defaultMaxInFlight = 4
	defaultRetention   = 10 * time.Minute
	defaultFailed      = 7 * 24 * time.Hour
	defaultTimeout     = 5 * time.Second
	defaultLeaseKeys   = 1000
)

// MaxRetention is the longest Retention: the lease a Done record is kept
// under lives Retention plus up to a minute, and etcd grants no lease longer
// than keyspace.MaxLeaseTTL.
const MaxRetention = keyspace.MaxLeaseTTL - maxBucket - time.Second

// ErrInvalidConfig is matched (errors.Is) by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("taskstore: invalid config")

// DefaultConfig returns the defaults: batches of up to 128 writes, 4 txns
// in flight, Done records kept 10m, Failed and Cancelled ones a week, up to
// 1,000 records per lease, 5s per txn, no logging.
func DefaultConfig() Config {
	return Config{
		MaxBatch:        defaultMaxBatch,
		MaxInFlight:     defaultMaxInFlight,
		Retention:       defaultRetention,
		FailedRetention: defaultFailed,
		Timeout:         defaultTimeout,
		MaxLeaseKeys:    defaultLeaseKeys,
	}
}

// Validate reports the first thing wrong with c; zero fields are valid.
func (c Config) Validate() error {
	switch {
	case c.MaxBatch < 0:
		return fmt.Errorf("%w: max batch must not be negative, got %d", ErrInvalidConfig, c.MaxBatch)
	case c.MaxInFlight < 0:
		return fmt.Errorf("%w: max in flight must not be negative, got %d", ErrInvalidConfig, c.MaxInFlight)
	case c.Retention < 0:
		return fmt.Errorf("%w: retention must not be negative, got %s", ErrInvalidConfig, c.Retention)
	case c.Retention > MaxRetention:
		return fmt.Errorf("%w: retention must be at most %s (etcd's longest lease, less a bucket), got %s",
			ErrInvalidConfig, MaxRetention, c.Retention)
	case c.FailedRetention < 0:
		return fmt.Errorf("%w: failed retention must not be negative, got %s", ErrInvalidConfig, c.FailedRetention)
	case c.FailedRetention > MaxRetention:
		return fmt.Errorf("%w: failed retention must be at most %s (etcd's longest lease, less a bucket), got %s",
			ErrInvalidConfig, MaxRetention, c.FailedRetention)
	case c.MaxLeaseKeys < 0:
		return fmt.Errorf("%w: max lease keys must not be negative, got %d", ErrInvalidConfig, c.MaxLeaseKeys)
	case cmp.Or(c.MaxLeaseKeys, defaultLeaseKeys) < cmp.Or(c.MaxBatch, defaultMaxBatch):
		return fmt.Errorf("%w: max lease keys must be at least max batch, %d (a txn's records share a lease), got %d",
			ErrInvalidConfig, cmp.Or(c.MaxBatch, defaultMaxBatch), cmp.Or(c.MaxLeaseKeys, defaultLeaseKeys))
	case c.Timeout < 0:
		return fmt.Errorf("%w: timeout must not be negative, got %s", ErrInvalidConfig, c.Timeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBatch == 0 {
		c.MaxBatch = defaultMaxBatch
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.MaxLeaseKeys == 0 {
		c.MaxLeaseKeys = defaultLeaseKeys
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
