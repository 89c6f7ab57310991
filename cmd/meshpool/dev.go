package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/node"
)

func (m *Main) runDev(ctx context.Context, args []string) error {
	cfg := node.DefaultConfig()
	cfg.Version = version
	var common commonFlags
	nodes := 3
	etcdPort := 2379
	secure, secureDir := false, ""
	fs := newFlagSet("dev", "Runs a local cluster in one process: an embedded etcd on 127.0.0.1 and N nodes on 127.0.0.2, 127.0.0.3, ...\nwith the default ports. Ctrl-C stops everything cleanly.", m.Stdout)
	fs.IntVar(&nodes, "nodes", nodes, "number of nodes (1-250)")
	fs.IntVar(&etcdPort, "etcd-port", etcdPort, "client port of the embedded etcd on 127.0.0.1 (its peer port is the next one)")
	fs.IntVar(&cfg.ClientPort, "client-port", cfg.ClientPort, "NATS client port of every node")
	fs.IntVar(&cfg.ClusterPort, "cluster-port", cfg.ClusterPort, "NATS route port of every node")
	fs.IntVar(&cfg.HTTPPort, "http-port", cfg.HTTPPort, "HTTP port of every node")
	fs.BoolVar(&secure, "secure", false, "run securely: etcd with TLS, client certificates and a user; NATS with TLS, a route secret and users (a throw-away CA and secrets in a temp dir)")
	fs.StringVar(&secureDir, "secure-dir", "", "with --secure: keep the CA and secrets in this directory (made if needed, reused if it holds them) instead of a temp dir")
	var work workFlags
	work.bind(fs, &cfg)
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
	if nodes < 1 || nodes > 250 {
		return usagef("dev: --nodes %d: want 1-250", nodes)
	}
	if etcdPort < 1 || etcdPort > 65534 {
		// etcd's peer port is the next one.
		return usagef("dev: --etcd-port %d: want 1-65534", etcdPort)
	}
	log, err := newLogger(m.Stderr, common.logFormat, common.logLevel)
	if err != nil {
		return err
	}
	// The nodes' flags are checked before etcd starts, as the first node
	// will be configured (security aside).
	first := cfg
	first.Etcd, first.Name, first.Advertise = []string{fmt.Sprintf("127.0.0.1:%d", etcdPort)}, "a", "127.0.0.2"
	if err := first.Validate(); err != nil {
		return usagef("dev: %w", err)
	}

	dir, err := os.MkdirTemp("", "meshpool-dev-etcd-")
	if err != nil {
		return fmt.Errorf("dev: cannot make a data dir for etcd: %w", err)
	}
	defer os.RemoveAll(dir)
	devLog := log.With("component", "dev")
	ecfg := embedetcd.Config{Dir: dir, Host: "127.0.0.1", ClientPort: etcdPort, PeerPort: etcdPort + 1}
	var sf secureFiles
	if secure {
		if sf, err = devSecureFiles(secureDir, nodes); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		if secureDir == "" {
			defer os.RemoveAll(sf.Dir)
		}
		ecfg.CertFile, ecfg.KeyFile, ecfg.ClientCAFile = sf.EtcdCert, sf.EtcdKey, sf.CA
	}
	etcd, err := embedetcd.Start(ecfg)
	if err != nil {
		return fmt.Errorf("dev: %w (is another etcd running on 127.0.0.1:%d?)", err, etcdPort)
	}
	defer etcd.Close()
	devLog.Info("embedded etcd ready", "endpoint", etcd.Endpoint(), "data", dir, "tls", secure)

	cfg.Etcd = []string{etcd.Endpoint()}
	if secure {
		if err := devSecure(ctx, etcd, sf, &cfg); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	var ns []*node.Node
	for i := range nodes {
		c := cfg
		c.Name = string(rune('a' + i%26))
		if i >= 26 {
			c.Name = fmt.Sprintf("n%d", i+1)
		}
		c.Advertise = fmt.Sprintf("127.0.0.%d", i+2)
		c.Logger = log
		if secure {
			devNodeCert(sf, &c)
		}
		n, err := node.New(c)
		if err != nil {
			return usageError{err}
		}
		ns = append(ns, n)
	}

	// Each node runs until ctx ends; if one cannot start, stop them all.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Run(ctx); err != nil {
				cancel(fmt.Errorf("node %s: %w", n.ID(), err))
			}
		}()
	}
	if secure {
		logSecureTryOut(devLog, sf, cfg)
	} else {
		devLog.Info("cluster starting; watch results with: nats -s nats://127.0.0.2:4222 sub results",
			"nodes", nodes, "task_interval", cfg.TaskInterval, "work_time", cfg.WorkTime.String())
	}
	<-ctx.Done()
	start := time.Now()
	wg.Wait()
	devLog.Info("cluster stopped", "took", time.Since(start).Round(time.Millisecond))
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}
