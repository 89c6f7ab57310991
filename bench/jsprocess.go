package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream baselines run their servers and workers as processes of
// their own, as meshpool's nodes are, so that each one's CPU time is read
// from /proc like a node's: the bench binary runs itself with one of
// these hidden first arguments.
const (
	jsServerCmd = "jetstream-server"
	jsWorkerCmd = "jetstream-worker"
)

// jsServer runs one embedded nats-server with JetStream until ctx ends or
// the bench that started it is gone.
func jsServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(jsServerCmd, flag.ContinueOnError)
	name := fs.String("name", "js1", "server name")
	ip := fs.String("ip", "127.0.0.1", "address of the client and route ports")
	port := fs.Int("port", 4222, "client port")
	clusterPort := fs.Int("cluster-port", 0, "route port; 0: a server on its own")
	routes := fs.String("routes", "", "comma-separated route URLs of the other servers")
	store := fs.String("store", "", "JetStream's store dir")
	syncAlways := fs.Bool("sync", false, "sync every write to the store (SyncAlways)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("cannot parse flags: %w", err)
	}
	opts := &server.Options{ServerName: *name, Host: *ip, Port: *port, JetStream: true, StoreDir: *store, SyncAlways: *syncAlways,
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30, NoLog: true, NoSigs: true}
	if *clusterPort > 0 {
		opts.Cluster = server.ClusterOpts{Name: "bench-jetstream", Host: *ip, Port: *clusterPort}
		opts.Routes = server.RoutesFromStr(*routes)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("cannot make the server: %w", err)
	}
	s.Start()
	defer s.WaitForShutdown()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return errors.New("server not ready for connections within 10s")
	}
	ctx, stop := whileParent(ctx)
	defer stop()
	<-ctx.Done()
	return nil
}

// jsWorker consumes a work queue stream through a durable pull consumer
// and acks every message, until ctx ends or the bench is gone. It
// publishes nothing else: the jobs do no work.
func jsWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(jsWorkerCmd, flag.ContinueOnError)
	url := fs.String("url", "", "a server's client URL")
	stream := fs.String("stream", jsStream, "the stream")
	consumer := fs.String("consumer", jsConsumer, "the durable pull consumer")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("cannot parse flags: %w", err)
	}
	nc, err := nats.Connect(*url, nats.Name("bench jetstream worker"))
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cannot use JetStream: %w", err)
	}
	cons, err := js.Consumer(ctx, *stream, *consumer)
	if err != nil {
		return fmt.Errorf("cannot bind to consumer %s: %w", *consumer, err)
	}
	var once sync.Once
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			once.Do(func() { fmt.Fprintln(os.Stderr, "cannot ack:", err) })
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		fmt.Fprintln(os.Stderr, "consume:", err)
	}))
	if err != nil {
		return fmt.Errorf("cannot consume: %w", err)
	}
	ctx, stop := whileParent(ctx)
	defer stop()
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

// whileParent returns a context that also ends when this process's parent,
// the bench, is gone, so that a child of a killed bench does not run on;
// stop ends it and waits for its watch.
func whileParent(ctx context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ppid := os.Getppid()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != ppid {
					cancel()
					return
				}
			}
		}
	})
	return ctx, func() { cancel(); wg.Wait() }
}

// jsSystem is the processes of one JetStream baseline: its servers and,
// once the stream is made, its workers.
type jsSystem struct {
	spec    jsSpec
	exe     string // the bench binary
	store   string // removed by close
	servers []*proc
	names   []string // the servers' names, as a stream's leader is told
	urls    []string // the servers' client URLs, in the order of names
	workers []*proc
}

// jsPorts are the ports of every JetStream server, each on an address of
// its own (see jsAddrs).
const jsClientPort, jsRoutePort = 4222, 6222

// jsAddrs returns n addresses 127.0.255.Y on which both ports are free.
// The meshpool clusters of the other groups take 127.0.X.Y with X up to
// 254 and Y from 10 to 249, the tests 127.0.0.x: 127.0.255.x is no one's.
func jsAddrs(n int) ([]string, error) {
	var ips []string
	for y := 1; y < 255 && len(ips) < n; y++ {
		ip := fmt.Sprintf("127.0.255.%d", y)
		if portsFree(ip, jsClientPort, jsRoutePort) {
			ips = append(ips, ip)
		}
	}
	if len(ips) < n {
		return nil, fmt.Errorf("no %d addresses 127.0.255.x with ports %d and %d free", n, jsClientPort, jsRoutePort)
	}
	return ips, nil
}

// startJS starts the servers of spec on fresh addresses and a fresh store:
// in /dev/shm (under the env's dir), or under diskDir when spec syncs.
func startJS(e *env, spec jsSpec) (*jsSystem, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the bench binary: %w", err)
	}
	ips, err := jsAddrs(spec.replicas)
	if err != nil {
		return nil, err
	}
	parent := e.dir
	if spec.sync {
		parent = diskDir
	}
	store, err := os.MkdirTemp(parent, "meshpool-bench-jetstream-")
	if err != nil {
		return nil, fmt.Errorf("cannot make the store dir: %w", err)
	}
	s := &jsSystem{spec: spec, exe: exe, store: store}
	for k, ip := range ips {
		name := fmt.Sprintf("js%d", k+1)
		args := []string{jsServerCmd, "-name", name, "-ip", ip, "-port", fmt.Sprint(jsClientPort), "-store", store + "/" + name}
		if spec.sync {
			args = append(args, "-sync")
		}
		if len(ips) > 1 {
			var routes []string
			for _, other := range ips {
				if other != ip {
					routes = append(routes, fmt.Sprintf("nats://%s:%d", other, jsRoutePort))
				}
			}
			args = append(args, "-cluster-port", fmt.Sprint(jsRoutePort), "-routes", strings.Join(routes, ","))
		}
		p, err := e.start("jetstream server "+ip, exe, args...)
		if err != nil {
			s.close()
			return nil, err
		}
		s.servers, s.names = append(s.servers, p), append(s.names, name)
		s.urls = append(s.urls, fmt.Sprintf("nats://%s:%d", ip, jsClientPort))
	}
	return s, nil
}

// startWorkers starts n worker processes, worker k on server k mod the
// servers, and waits until each has a pull request waiting on consumer.
func (s *jsSystem) startWorkers(ctx context.Context, e *env, js jetstream.JetStream, n int) error {
	for k := range n {
		p, err := e.start(fmt.Sprintf("jetstream worker %d", k+1), s.exe, jsWorkerCmd, "-url", s.urls[k%len(s.urls)])
		if err != nil {
			return err
		}
		s.workers = append(s.workers, p)
	}
	var waiting int
	err := poll(ctx, readyTimeout, 20*time.Millisecond, func() bool {
		cons, err := js.Consumer(ctx, jsStream, jsConsumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		if err == nil {
			waiting = info.NumWaiting
		}
		return waiting >= n
	})
	if err != nil {
		return fmt.Errorf("%d of %d workers pulling: %w\n%s", waiting, n, err, s.output())
	}
	return nil
}

// output is the last words of every process, for an error.
func (s *jsSystem) output() string {
	var b strings.Builder
	for _, p := range append(append([]*proc(nil), s.servers...), s.workers...) {
		if out := strings.TrimSpace(p.out.String()); out != "" {
			fmt.Fprintf(&b, "%s: %s\n", p.name, out)
		}
	}
	return b.String()
}

// cpu reads the CPU time of the servers, the workers and the load
// generator (this process), in µs.
func (s *jsSystem) cpu() (map[string]float64, error) {
	m := map[string]float64{}
	for kind, ps := range map[string][]*proc{"servers": s.servers, "workers": s.workers} {
		for _, p := range ps {
			us, err := cpuMicros(p.pid())
			if err != nil {
				return nil, err
			}
			m[kind] += us
		}
	}
	us, err := selfCPUMicros()
	if err != nil {
		return nil, err
	}
	m["load generator"] = us
	return m, nil
}

// close stops the workers, then the servers, and removes the store.
func (s *jsSystem) close() {
	for _, p := range s.workers {
		p.stop(syscall.SIGTERM, 5*time.Second)
	}
	for _, p := range s.servers {
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
	if err := os.RemoveAll(s.store); err != nil {
		progress("cannot remove %s: %v", s.store, err)
	}
}
