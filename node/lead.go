package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/schedule"
	"github.com/meshpool/meshpool/taskstore"
)

// lead runs the master duties for one term; the election calls it.
func (n *Node) lead(ctx context.Context, l election.Leadership) {
	log := n.logger("master").With("term", l.Term)
	log.Info("promoted to master")
	n.leading.Store(l.Term)
	defer n.leading.Store(0)
	p := n.parts.Load()
	if p == nil {
		return
	}
	p.worker.observeTerm(l.Term)
	actx, stopEvents := context.WithCancel(ctx)
	var events sync.WaitGroup
	events.Go(func() { announce(actx, p.broker.Conn(), n.id, l, p.registry.Membership, log) })
	defer func() { stopEvents(); events.Wait() }()
	if n.cfg.CompactionRetention > 0 { // the master alone compacts etcd
		c := taskstore.NewCompactor(p.etcd, n.cfg.Prefix, n.cfg.CompactionRetention, log)
		events.Go(func() { _ = c.Run(actx) })
	}
	if err := n.runMaster(ctx, l, p, log); err != nil {
		log.Error("master duties failed", "err", err)
		// Do not hand leadership straight back in a tight loop.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	log.Info("demoted, back to work as a worker", "reason", context.Cause(ctx))
}

// runMaster runs the term's master on a task store fenced by the term. The
// store's writer stops with the master, not only with the leadership: the
// master may stop early (it cannot load the tasks) while still leading.
func (n *Node) runMaster(ctx context.Context, l election.Leadership, p *parts, log *slog.Logger) error {
	sc := taskstore.DefaultConfig()
	sc.Retention, sc.FailedRetention, sc.Logger = n.cfg.ResultRetention, n.cfg.FailedRetention, log
	store := termStore{taskstore.NewWriter(p.etcd, n.cfg.Prefix, taskstore.Fence{Key: l.Key, Term: l.Term}, sc), p.etcd, n.cfg.Prefix}
	wctx, stopWriter := context.WithCancel(ctx)
	var writer sync.WaitGroup
	writer.Go(func() { _ = store.Run(wctx) })
	defer func() { stopWriter(); writer.Wait() }()
	conn := p.broker.Conn()
	sender := natsSender{conn: conn, hasInterest: p.broker.HasInterest, ackTimeout: n.cfg.AckTimeout, log: log}
	m := newMaster(ctx, masterConfig{
		id: n.id, prefix: n.cfg.Prefix, lead: l, term: l.Term, records: store, conn: conn,
		send: sender.send, sendBatch: sender.sendBatch, cancelOn: sender.cancel,
		membership: p.registry.Membership, interval: n.cfg.TaskInterval, ackTimeout: n.cfg.AckTimeout,
		taskTimeout: n.cfg.TaskTimeout, retention: n.cfg.ResultRetention, failedRetention: n.cfg.FailedRetention,
		policy:  lifePolicy{maxAttempts: n.cfg.MaxAttempts, timeout: n.cfg.TaskTimeout, backoff: n.cfg.Backoff, backoffMax: n.cfg.BackoffMax},
		doneMax: n.cfg.DoneIndexSize, log: log, stats: &n.stats,
		latency: n.metrics.observeLatency, maxPayload: n.cfg.MaxPayload,
		limits: pendingLimits{tasks: n.cfg.MaxPending, bytes: n.cfg.MaxPendingBytes, ephemeral: n.cfg.MaxEphemeral,
			perSubmitter: n.cfg.MaxPendingPerSubmitter},
		etcdFull: func() string { return p.alarms.Full(n.cfg.EtcdMaxFill) },
	})
	n.table.Store(m.table)
	defer n.table.Store(nil)
	return m.run()
}

// termStore is a term's taskRecords on etcd: its fenced writer, and
// taskstore's reads under the node's prefix.
type termStore struct {
	*taskstore.Writer
	cli    *clientv3.Client
	prefix string
}

func (s termStore) Load(ctx context.Context) ([]taskstore.Record, int64, error) {
	return taskstore.Load(ctx, s.cli, s.prefix)
}

func (s termStore) Get(ctx context.Context, uuid string) (taskstore.Record, bool, error) {
	return taskstore.Get(ctx, s.cli, s.prefix, uuid)
}

func (s termStore) Schedules(ctx context.Context) ([]schedule.Schedule, error) {
	list, _, err := schedule.Load(ctx, s.cli, s.prefix)
	return list, err
}
