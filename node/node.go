package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
	"github.com/meshpool/meshpool/taskstore"
)

// Node is one meshpool node. Create it with New and drive it with Run.
type Node struct {
	cfg     Config
	id      string
	name    string
	log     *slog.Logger
	started time.Time
	stats   masterStats
	metrics *metrics
	leading atomic.Int64              // our term while master, else 0
	table   atomic.Pointer[taskTable] // the master's tasks while master, for /status and /metrics
	// streamRefused counts messages /stream refused to relay (page.go).
	streamRefused atomic.Int64
	// httpRefused counts HTTP connections closed at once: maxHTTPConns open.
	httpRefused atomic.Int64
	master      masterHealth
	unrouted    routeWatch // members without a route to this node (/readyz, /status)

	parts atomic.Pointer[parts] // set while Run is running
}

// parts are the running components, for Status.
type parts struct {
	etcd     *clientv3.Client
	broker   *broker.Broker
	registry *registry.Registry
	election *election.Election
	worker   *worker
	alarms   *taskstore.Alarms
	httpURL  string
	// metricsURL is the --metrics-addr listener's URL, or "".
	metricsURL string
}

// New checks the config and picks this node's ID. It starts nothing.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node: no --name given and cannot read the host name: %w", err)
		}
		name = h
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Handlers == nil {
		cfg.Handlers = meshpool.NewMux()
		cfg.Handlers.Handle(message.KindTriple, Triple(cfg.WorkTime))
	}
	if len(cfg.Handlers.Kinds()) > registry.MaxKinds {
		return nil, fmt.Errorf("%w: %d kinds: a node handles at most %d", ErrInvalidConfig, len(cfg.Handlers.Kinds()), registry.MaxKinds)
	}
	id := registry.NewID(name)
	// Every line is bounded, and marked lines are rate-limited (ratelog).
	n := &Node{cfg: cfg, id: id, name: name, log: slog.New(ratelog.NewHandler(log.Handler(), 0)).With("node", id)}
	n.metrics = newMetrics(n)
	return n, nil
}

// ID is this node's ID for this process start, e.g. "a-1f2e3d4c".
func (n *Node) ID() string { return n.id }

func (n *Node) logger(component string) *slog.Logger { return n.log.With("component", component) }

// Run starts the node and blocks until ctx ends, then shuts down in the order
// that loses nothing: stop taking tasks, resign, finish tasks in flight,
// revoke the lease, drain NATS, stop the embedded server. It returns an error
// only when the node cannot start.
func (n *Node) Run(ctx context.Context) error {
	n.started = time.Now()
	app := n.logger("app")
	app.Info("starting", "ip", n.cfg.Advertise, "etcd", n.cfg.Etcd, "prefix", n.cfg.Prefix, "version", n.cfg.Version)

	cli, err := n.connectEtcd(ctx, app)
	if err != nil || cli == nil {
		return err
	}
	defer cli.Close()

	bcfg := broker.DefaultConfig()
	bcfg.Name, bcfg.Host, bcfg.ClusterName = n.id, n.cfg.Advertise, n.cfg.ClusterName
	bcfg.ClientPort, bcfg.ClusterPort = n.cfg.ClientPort, n.cfg.ClusterPort
	bcfg.Logger = n.logger("nats")
	bcfg.Security = n.cfg.NATS
	br, err := broker.Start(bcfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer br.Close()

	ln, httpURL, err := n.listenHTTP()
	if err != nil {
		return err
	}

	rec := registry.Record{
		ID: n.id, Name: n.name, IP: n.cfg.Advertise,
		ClientURL: br.ClientURL(), ClusterURL: br.ClusterURL(), HTTPURL: httpURL,
		Version: n.cfg.Version, Started: n.started.UTC(), Cluster: n.cfg.ClusterName,
		Kinds: n.cfg.Handlers.Kinds(), Slots: n.cfg.Slots,
	}
	rcfg := registry.DefaultConfig()
	rcfg.Prefix, rcfg.TTL, rcfg.Logger = n.cfg.Prefix, n.cfg.TTL, n.logger("cluster")
	reg, err := registry.New(cli, rec, rcfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: %w", err)
	}
	ecfg := election.DefaultConfig()
	ecfg.Prefix, ecfg.TTL, ecfg.Logger = n.cfg.Prefix, n.cfg.TTL, n.logger("cluster")
	el, err := election.New(cli, n.id, ecfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: %w", err)
	}
	// An ack later than AckTimeout is lost anyway: check a term within half.
	wk := newWorker(n.id, br.Conn(), n.workerConfig(), etcdMasterTerm(cli, n.cfg.Prefix), n.cfg.AckTimeout/2, n.logger("worker"))
	if err := wk.start(); err != nil {
		ln.Close()
		return err
	}
	alarms := taskstore.NewAlarms(cli, n.logger("cluster"))
	n.parts.Store(&parts{etcd: cli, broker: br, registry: reg, election: el, worker: wk, alarms: alarms, httpURL: httpURL, metricsURL: ln.url()})
	defer n.parts.Store(nil)
	app.Info("my ID", "id", n.id, "ip", n.cfg.Advertise, "client_url", rec.ClientURL, "cluster_url", rec.ClusterURL, "http_url", httpURL)

	// Each group is stopped on its own, in shutdown order.
	bg := newGroup(ctx)
	bg.Go(func(ctx context.Context) { n.syncRoutes(ctx, reg, br) })
	bg.Go(func(ctx context.Context) { n.followMaster(ctx, el, wk) })
	bg.Go(func(ctx context.Context) { n.logInfo(ctx, reg, el) })
	bg.Go(func(ctx context.Context) { _ = alarms.Run(ctx) })
	bg.Go(func(ctx context.Context) { n.master.watch(ctx, reg, el, n.cfg.TTL, n.logger("cluster")) })
	stopHTTP := n.serveHTTP(bg, br, ln)
	// Before it registers or campaigns: a node of another cluster name
	// must not join (its NATS server cannot route to theirs).
	if err := n.checkClusterName(ctx, cli, app); err != nil || ctx.Err() != nil {
		if err != nil {
			app.Error("cannot join", "err", err)
		}
		wk.stop()
		wk.finish(n.cfg.ShutdownGrace)
		stopHTTP()
		bg.Stop()
		return err
	}
	regs := newGroup(ctx)
	regs.Go(func(ctx context.Context) { _ = reg.Run(ctx) })
	elect := newGroup(ctx)
	elect.Go(func(ctx context.Context) { _ = el.Run(ctx, n.lead) })

	<-ctx.Done()
	app.Info("stopping: no new tasks")
	wk.stop()
	elect.Stop() // resigns: the next master takes over now
	wk.finish(n.cfg.ShutdownGrace)
	regs.Stop() // revokes the lease: peers see us leave now
	stopHTTP()
	bg.Stop()
	app.Info("stopped")
	return nil
}

// etcdMasterTerm reads the current master's term with one Get: the create
// revision of the oldest election key, 0 when there is no master.
func etcdMasterTerm(cli *clientv3.Client, prefix string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		l, err := election.CurrentLeader(ctx, cli, prefix)
		return l.Term, err
	}
}

// followMaster feeds every master change to the worker, so a task from a
// deposed master is refused even before the new master sends anything.
// After etcd was replaced terms start low again: the worker forgets the old ones.
func (n *Node) followMaster(ctx context.Context, el *election.Election, wk *worker) {
	replacements := el.Replacements()
	for {
		// The count first: a replacement seen with the master of before
		// it would set the worker back to the old etcd's term.
		r := el.Replacements()
		leader, changed := el.Leader()
		if r != replacements {
			replacements = r
			wk.term.Store(leader.Term)
		}
		wk.observeTerm(leader.Term)
		wk.views.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// logInfo logs what this node knows, like the article's "nodes info".
func (n *Node) logInfo(ctx context.Context, reg *registry.Registry, el *election.Election) {
	log := n.logger("app")
	t := time.NewTicker(n.cfg.InfoInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			mem, _ := reg.Membership()
			leader, _ := el.Leader()
			log.Info("nodes info", "me", n.id, "master", leader.ID, "term", leader.Term, "members", mem.IDs())
		}
	}
}

// group runs goroutines under one context and stops them together.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newGroup's context keeps parent's values but not its cancellation: each
// group is stopped explicitly, in shutdown order.
func newGroup(parent context.Context) *group {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	return &group{ctx: ctx, cancel: cancel}
}

func (g *group) Go(f func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.ctx)
	}()
}

func (g *group) Stop() {
	g.cancel()
	g.wg.Wait()
}
