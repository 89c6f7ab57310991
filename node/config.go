package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/taskstore"
)

// Config is everything a node needs. As every Config in meshpool, a zero
// field means its default (DefaultConfig's value), except the fields whose
// comment says what zero means: TaskInterval, ShutdownGrace,
// ResultRetention, CompactionRetention and MaxPendingPerSubmitter (0 turns
// them off), WorkTime (no
// time at all), Name, HTTPAddr and MetricsAddr. Advertise has no default.
// Handlers nil means the demo kind alone.
type Config struct {
	// Etcd lists the etcd endpoints, host:port.
	Etcd []string
	// Prefix is the etcd key prefix every key of this cluster lives under.
	Prefix string
	// Name is the human part of the node ID; default the host name.
	Name string
	// Advertise is the IP this node listens on and registers.
	Advertise string
	// ClientPort, ClusterPort and HTTPPort are the listeners on Advertise.
	// -1 picks a free port (tests).
	ClientPort, ClusterPort, HTTPPort int
	// ClusterName is the NATS cluster name every node must share.
	ClusterName string
	// EtcdCACert, EtcdCert and EtcdKey are PEM files: the CA of etcd's
	// server certificate and this node's client certificate (see
	// etcdclient.Options). With any of them, or https:// endpoints, the
	// node speaks TLS to etcd.
	EtcdCACert, EtcdCert, EtcdKey string
	// EtcdUser and EtcdPassword authenticate to etcd; the password is
	// never logged.
	EtcdUser, EtcdPassword string
	// NATS is the embedded server's TLS, route secret and client users
	// (see broker.Security); the zero value is an open server.
	NATS broker.Security
	// HTTPAddr is the IP the HTTP server listens on; "" means Advertise.
	HTTPAddr string
	// MetricsAddr, if set, is host:port of a second HTTP listener that
	// alone serves the operators' endpoints: /status, /metrics, /nats/*
	// and the live page with its /stream (which shows every result). The
	// main listener then serves only /healthz and /readyz.
	MetricsAddr string
	// Profiling serves Go's profiles (net/http/pprof) under /debug/pprof/
	// beside /metrics: for measuring a node under load. Off by default: a
	// profile costs CPU while it is taken and shows the code's internals.
	Profiling bool
	// TTL is the lease TTL of the registration and of the election session.
	TTL time.Duration
	// TaskInterval is how often the master generates a demo task; 0 disables
	// the generator.
	TaskInterval time.Duration
	// WorkTime is the range a worker spends on a demo task; zero for none.
	WorkTime WorkTime
	// Handlers are the kinds this node runs as a worker, each with its
	// handler; nil means the demo kind alone (Triple(WorkTime)). The node
	// registers the kinds, and the master sends it only tasks of them.
	Handlers *meshpool.Mux
	// Slots is how many tasks this node runs at once at most, its
	// capacity as a worker; default the number of CPUs.
	Slots int
	// MaxPayload bounds a submitted task's payload, MaxResult a result, in
	// bytes; each at most message.MaxData, and together at most
	// message.MaxRecordData (a task's etcd record holds both).
	MaxPayload, MaxResult int
	// MaxPending bounds the tasks the master holds accepted and not done,
	// and MaxPendingBytes their payloads: beyond either a submission is
	// refused as temporary.
	MaxPending      int
	MaxPendingBytes int64
	// MaxEphemeral bounds, of those tasks, the ones of durability none: they
	// cost the master's memory only, and nothing outside it (no etcd quota)
	// stops a flood of them. Beyond it a non-durable submission is refused
	// as temporary; durable ones are still taken.
	MaxEphemeral int
	// MaxPendingPerSubmitter bounds, of those tasks, the ones of one
	// submitter: the NATS user whose subject, tasks.submit.<user>, a
	// submission came on. Beyond it that submitter's submissions are
	// refused as temporary, before they are decoded; the others' are still
	// taken. Anonymous submissions (tasks.submit) and the tasks the master
	// makes itself (schedules) have only the master's bounds.
	// 0 means no bound; DefaultConfig's is 25,000.
	MaxPendingPerSubmitter int
	// AckTimeout bounds the wait for a worker's ack before the master tries
	// the next worker.
	AckTimeout time.Duration
	// InfoInterval is how often a node logs what it knows ("nodes info").
	InfoInterval time.Duration
	// ShutdownGrace bounds how long a stopping worker finishes tasks in flight.
	ShutdownGrace time.Duration
	// TaskTimeout is how long the master waits for a placed task's result
	// before it gives the task to another worker.
	TaskTimeout time.Duration
	// ResultRetention is how long a done task's record is kept, so that a
	// re-submission of its uuid is answered with its result; 0 deletes the
	// record when its result is recorded. At most taskstore.MaxRetention:
	// etcd grants no longer lease.
	ResultRetention time.Duration
	// FailedRetention is how long a failed or cancelled task's record is
	// kept: the dead-letter list, which get, tasks and retry read. Default
	// a week (0 means the default); at most taskstore.MaxRetention.
	FailedRetention time.Duration
	// MaxAttempts is how many attempts a task gets when its submission
	// does not say (max_attempts). Default 5.
	MaxAttempts int
	// Backoff and BackoffMax shape the wait before a task's next attempt
	// when its submission does not say: Backoff × 2^(n-1) after attempt n,
	// at most BackoffMax, less a random part of up to half. Default 1s and
	// 10m.
	Backoff, BackoffMax time.Duration
	// CompactionRetention is how much of etcd's history the master keeps:
	// it compacts the revisions older than this (see taskstore.Compactor),
	// or 0 leaves compaction to etcd's own --auto-compaction-*. At least 1m,
	// so that no watch of a node is ever behind it. Compaction is
	// etcd-wide: other users of the etcd lose that history too.
	CompactionRetention time.Duration
	// EtcdMaxFill is the share of etcd's space quota in use (the fullest
	// member's) from which the master refuses new durable tasks as
	// temporary, so that what must still be written (registrations,
	// elections, the moves of accepted tasks) always has room and etcd never
	// raises NOSPACE because of meshpool's tasks. Default 0.8; 1 leaves it
	// all to etcd's NOSPACE.
	EtcdMaxFill float64
	// DoneIndexSize is how many done tasks the master remembers in memory
	// to answer re-submissions within the retention. Beyond it the oldest
	// are forgotten and a re-submitted uuid is looked up in etcd instead.
	DoneIndexSize int
	// Version is written into the node's record.
	Version string
	// Logger receives every log line; component and node attributes are added.
	Logger *slog.Logger
}

// MinCompactionRetention is the least history the master may keep when it
// compacts etcd.
const MinCompactionRetention = time.Minute

// minCompactionRetention is what Validate checks against: MinCompactionRetention,
// shortened only by this package's tests (export_test.go).
var minCompactionRetention = MinCompactionRetention

// etcdOptions are the etcd client settings of c.
func (c Config) etcdOptions() etcdclient.Options {
	return etcdclient.Options{
		Endpoints: c.Etcd, DialTimeout: 5 * time.Second,
		CACert: c.EtcdCACert, Cert: c.EtcdCert, Key: c.EtcdKey,
		Username: c.EtcdUser, Password: c.EtcdPassword,
	}
}

// WorkTime is a closed range of durations.
type WorkTime struct{ Min, Max time.Duration }

// ParseWorkTime reads "1s-15s" (or a single duration, "2s").
func ParseWorkTime(s string) (WorkTime, error) {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	var w WorkTime
	var err error
	if w.Min, err = time.ParseDuration(strings.TrimSpace(lo)); err != nil {
		return WorkTime{}, fmt.Errorf("work time %q: want MIN-MAX like 1s-15s: %w", s, err)
	}
	if w.Max, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
		return WorkTime{}, fmt.Errorf("work time %q: want MIN-MAX like 1s-15s: %w", s, err)
	}
	return w, w.Validate()
}

// Validate checks 0 <= Min <= Max.
func (w WorkTime) Validate() error {
	if w.Min < 0 || w.Max < w.Min {
		return fmt.Errorf("work time %s: want 0 <= MIN <= MAX", w)
	}
	return nil
}

// String formats the range as ParseWorkTime reads it.
func (w WorkTime) String() string { return w.Min.String() + "-" + w.Max.String() }

// DefaultConfig returns the defaults the article's demo uses, with a 10 s
// TTL instead of its 120 s, so a lost node is noticed in seconds
// (docs/configuration.md).
func DefaultConfig() Config {
	return Config{
		Etcd:                   []string{"127.0.0.1:2379"},
		Prefix:                 "/meshpool",
		ClientPort:             4222,
		ClusterPort:            6222,
		HTTPPort:               8222,
		ClusterName:            "meshpool",
		TTL:                    10 * time.Second,
		TaskInterval:           10 * time.Second,
		WorkTime:               WorkTime{Min: time.Second, Max: 15 * time.Second},
		AckTimeout:             2 * time.Second,
		InfoInterval:           60 * time.Second,
		ShutdownGrace:          30 * time.Second,
		TaskTimeout:            60 * time.Second,
		ResultRetention:        10 * time.Minute,
		FailedRetention:        7 * 24 * time.Hour,
		MaxAttempts:            5,
		Backoff:                time.Second,
		BackoffMax:             10 * time.Minute,
		CompactionRetention:    taskstore.DefaultCompactionRetention,
		EtcdMaxFill:            0.8,
		DoneIndexSize:          200_000,
		Slots:                  runtime.NumCPU(),
		MaxPayload:             256 << 10,
		MaxResult:              1 << 20,
		MaxPending:             100_000,
		MaxPendingBytes:        256 << 20,
		MaxEphemeral:           10_000,
		MaxPendingPerSubmitter: 25_000,
		Version:                "dev",
	}
}

// ErrInvalidConfig is matched (errors.Is) by every error Config.Validate
// returns, as in the registry, election, taskstore and broker packages.
var ErrInvalidConfig = errors.New("node: invalid config")

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Etcd) == 0 {
		c.Etcd = d.Etcd
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	for _, p := range []struct{ port, def *int }{{&c.ClientPort, &d.ClientPort}, {&c.ClusterPort, &d.ClusterPort}, {&c.HTTPPort, &d.HTTPPort}} {
		if *p.port == 0 {
			*p.port = *p.def
		}
	}
	if c.ClusterName == "" {
		c.ClusterName = d.ClusterName
	}
	for _, f := range []struct{ v, def *time.Duration }{{&c.TTL, &d.TTL}, {&c.AckTimeout, &d.AckTimeout}, {&c.InfoInterval, &d.InfoInterval}, {&c.TaskTimeout, &d.TaskTimeout},
		{&c.FailedRetention, &d.FailedRetention}, {&c.Backoff, &d.Backoff}, {&c.BackoffMax, &d.BackoffMax}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int }{{&c.DoneIndexSize, &d.DoneIndexSize}, {&c.Slots, &d.Slots},
		{&c.MaxPayload, &d.MaxPayload}, {&c.MaxResult, &d.MaxResult}, {&c.MaxPending, &d.MaxPending}, {&c.MaxEphemeral, &d.MaxEphemeral}, {&c.MaxAttempts, &d.MaxAttempts}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if c.EtcdMaxFill == 0 {
		c.EtcdMaxFill = d.EtcdMaxFill
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = d.MaxPendingBytes
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	return c
}

// Validate reports everything wrong with the config (zero fields taken as
// their defaults), in words a user can act on; the error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Etcd) == 0 {
		errs = append(errs, errors.New("at least one etcd endpoint is required"))
	}
	if len(c.Etcd) > 0 {
		// The endpoints' form, the TLS files and the auth pair.
		if err := c.etcdOptions().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HTTPAddr != "" && net.ParseIP(c.HTTPAddr) == nil {
		errs = append(errs, fmt.Errorf("http address %q: want an IP address to listen on (0.0.0.0 for all)", c.HTTPAddr))
	}
	if c.MetricsAddr != "" {
		if host, _, err := net.SplitHostPort(c.MetricsAddr); err != nil || net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("metrics address %q: want IP:port, e.g. 127.0.0.1:9222", c.MetricsAddr))
		}
	}
	if err := keyspace.CheckPrefix(c.Prefix); err != nil {
		errs = append(errs, err)
	}
	if ip := net.ParseIP(c.Advertise); ip == nil || ip.To4() == nil || ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("advertise address %q: want an IPv4 address other peers can reach", c.Advertise))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"client port", c.ClientPort}, {"cluster port", c.ClusterPort}, {"http port", c.HTTPPort}} {
		if p.port != -1 && (p.port < 1 || p.port > 65535) {
			errs = append(errs, fmt.Errorf("%s %d: want 1-65535", p.name, p.port))
		}
	}
	if c.ClusterName == "" || strings.ContainsAny(c.ClusterName, " \t.*>") {
		errs = append(errs, fmt.Errorf("cluster name %q: want a single word", c.ClusterName))
	}
	if err := keyspace.CheckTTL(c.TTL); err != nil {
		errs = append(errs, err)
	}
	if c.TaskInterval < 0 {
		errs = append(errs, fmt.Errorf("task interval %s: want 0 (off) or more", c.TaskInterval))
	}
	if err := c.WorkTime.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AckTimeout < 0 || c.InfoInterval < 0 || c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("ack timeout, info interval and shutdown grace must not be negative"))
	}
	if c.TaskTimeout < time.Second {
		errs = append(errs, fmt.Errorf("task timeout %s: want at least 1s", c.TaskTimeout))
	}
	if c.Slots < 0 {
		errs = append(errs, fmt.Errorf("slots %d: want at least 1", c.Slots))
	}
	if c.MaxPayload < 0 || c.MaxPayload > message.MaxData || c.MaxResult < 0 || c.MaxResult > message.MaxData {
		errs = append(errs, fmt.Errorf("max payload %d, max result %d: want each 1 to %d bytes", c.MaxPayload, c.MaxResult, message.MaxData))
	} else if c.MaxPayload+c.MaxResult > message.MaxRecordData {
		errs = append(errs, fmt.Errorf("max payload %d + max result %d: want at most %d bytes together: a task's etcd record holds both, and etcd takes at most 1.5 MiB a request",
			c.MaxPayload, c.MaxResult, message.MaxRecordData))
	}
	if c.MaxPending < 0 || c.MaxPendingBytes < 0 {
		errs = append(errs, fmt.Errorf("max pending %d, max pending bytes %d: want at least 1", c.MaxPending, c.MaxPendingBytes))
	}
	if c.MaxEphemeral < 0 {
		errs = append(errs, fmt.Errorf("max ephemeral %d: want at least 1", c.MaxEphemeral))
	}
	if c.MaxPendingPerSubmitter > c.MaxPending && c.MaxPending > 0 {
		errs = append(errs, fmt.Errorf("max pending per submitter %d is more than max pending %d: one submitter could fill the master; "+
			"lower it (a quarter of max pending is the default) or 0 for no bound", c.MaxPendingPerSubmitter, c.MaxPending))
	}
	if c.MaxPendingPerSubmitter < 0 {
		errs = append(errs, fmt.Errorf("max pending per submitter %d: want 0 (no bound) or more", c.MaxPendingPerSubmitter))
	}
	if c.DoneIndexSize < 0 {
		errs = append(errs, fmt.Errorf("done index size %d: want at least 1", c.DoneIndexSize))
	}
	if c.ResultRetention < 0 || c.ResultRetention > taskstore.MaxRetention {
		errs = append(errs, fmt.Errorf("result retention %s: want 0 (delete at once) up to %s: done records are kept under an etcd lease, and etcd grants none longer than %s",
			c.ResultRetention, taskstore.MaxRetention, keyspace.MaxLeaseTTL))
	}
	if c.FailedRetention < 0 || c.FailedRetention > taskstore.MaxRetention {
		errs = append(errs, fmt.Errorf("failed retention %s: want up to %s: failed records are kept under an etcd lease, and etcd grants none longer than %s",
			c.FailedRetention, taskstore.MaxRetention, keyspace.MaxLeaseTTL))
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > message.MaxAttempts {
		errs = append(errs, fmt.Errorf("max attempts %d: want 1 to %d", c.MaxAttempts, message.MaxAttempts))
	}
	if c.Backoff < 0 || c.Backoff > message.MaxBackoff || c.BackoffMax < 0 || c.BackoffMax > message.MaxBackoff {
		errs = append(errs, fmt.Errorf("backoff %s, backoff max %s: want each more than 0 and at most %s", c.Backoff, c.BackoffMax, message.MaxBackoff))
	}
	if c.TaskTimeout > message.MaxTimeout {
		errs = append(errs, fmt.Errorf("task timeout %s: want at most %s", c.TaskTimeout, message.MaxTimeout))
	}
	if !(c.EtcdMaxFill >= 0 && c.EtcdMaxFill <= 1) { // NaN too
		errs = append(errs, fmt.Errorf("etcd max fill %v: want more than 0 and at most 1 (a share of etcd's quota)", c.EtcdMaxFill))
	}
	if c.CompactionRetention != 0 && c.CompactionRetention < minCompactionRetention {
		errs = append(errs, fmt.Errorf("compaction retention %s: want 0 (off: etcd compacts) or at least %s, so that no watch is behind it",
			c.CompactionRetention, minCompactionRetention))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
