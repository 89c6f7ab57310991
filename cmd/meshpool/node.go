package main

import (
	"context"
	"errors"
	"strings"

	"github.com/meshpool/meshpool/node"
)

func (m *Main) runNode(ctx context.Context, args []string) error {
	cfg := node.DefaultConfig()
	cfg.Version = version
	var common commonFlags
	var iface string
	var etcdSec etcdSecurityFlags
	var natsSec natsServerFlags
	etcd := listFlag(cfg.Etcd)
	fs := newFlagSet("node", "Runs one meshpool node: registers in etcd, joins the NATS mesh, campaigns for master and works tasks.", m.Stdout)
	fs.Var(&etcd, "etcd", "etcd endpoints, comma-separated host:port (or https://host:port)")
	fs.StringVar(&cfg.Name, "name", "", "node name, the readable part of the node ID (default the host name)")
	fs.StringVar(&cfg.Advertise, "advertise", "", "IP to listen on and register (default: the IP of --interface, else the first non-loopback IPv4)")
	fs.StringVar(&iface, "interface", "", "take the IP to advertise from this interface, e.g. eth1")
	fs.IntVar(&cfg.ClientPort, "client-port", cfg.ClientPort, "NATS client port")
	fs.IntVar(&cfg.ClusterPort, "cluster-port", cfg.ClusterPort, "NATS route port")
	fs.IntVar(&cfg.HTTPPort, "http-port", cfg.HTTPPort, "HTTP port for /healthz and /status")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "IP the HTTP server listens on (default: the advertise IP; 0.0.0.0 for all)")
	fs.BoolVar(&cfg.Profiling, "pprof", false, "serve Go's profiles under /debug/pprof/ beside /metrics, for measuring a node under load")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "IP:port of a second HTTP listener for /status, /metrics, /nats/* and the live page; the main one then serves only /healthz and /readyz")
	fs.Float64Var(&cfg.EtcdMaxFill, "etcd-max-fill", cfg.EtcdMaxFill, "share of etcd's space quota in use from which new durable tasks are refused as temporary, keeping the rest for registrations and the tasks accepted (1 = up to etcd's NOSPACE)")
	fs.DurationVar(&cfg.CompactionRetention, "compaction-retention", cfg.CompactionRetention, "the master compacts etcd's history older than this, at least 1m (0 = off, for an etcd with its own --auto-compaction-*)")
	var work workFlags
	work.bind(fs, &cfg)
	etcdSec.bind(fs)
	natsSec.bind(fs)
	bindCommon(fs, &cfg, &common)
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	if err := refuseZero(fs); err != nil {
		return err
	}
	perSubmitterDefault(fs, &cfg)
	var err error
	if cfg.Handlers, err = work.handlers(cfg); err != nil {
		return usagef("%s: %w", strings.TrimPrefix(fs.Name(), "meshpool "), err)
	}
	cfg.Etcd = etcd
	if err := etcdSec.apply(&cfg, m.Getenv); err != nil {
		return usagef("node: %w", err)
	}
	if cfg.NATS, err = natsSec.security(); err != nil {
		return usagef("node: %w", err)
	}

	if cfg.Advertise != "" && iface != "" {
		return usagef("node: give --advertise or --interface, not both")
	}
	switch {
	case iface != "":
		if cfg.Advertise, err = node.InterfaceIP(iface); err != nil {
			return usageError{err}
		}
	case cfg.Advertise == "":
		if cfg.Advertise, err = node.DefaultIP(); err != nil {
			return usageError{err}
		}
	}
	log, err := newLogger(m.Stderr, common.logFormat, common.logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	n, err := node.New(cfg)
	if err != nil {
		return usageError{err}
	}
	return n.Run(ctx)
}

func helpIsNoError(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
