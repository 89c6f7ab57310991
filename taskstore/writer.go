package taskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/meshpool/meshpool/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fence is what makes a master's writes its own: they apply only while Key
// still exists with create revision Term.
type Fence struct {
	Key  string // the leader's election key
	Term int64  // its create revision
}

// ErrFenced is returned (wrapped) by every write of a master whose term is
// over: its election key is gone or belongs to another term.
var ErrFenced = errors.New("taskstore: fenced: this master's term is over")

var errRunTwice = errors.New("taskstore: Writer.Run called twice")

// Writer batches the writes of one master term. Create it with NewWriter,
// drive it with Run, then call Put and Complete from many goroutines.
type Writer struct {
	cli    *clientv3.Client
	prefix string
	fence  Fence
	cfg    Config
	log    *slog.Logger
	leases *leases // Done records' retention
	failed *leases // Failed and Cancelled records' retention

	queue   chan *op
	stopped chan struct{} // closed when Run has returned and no write is in flight
	stopErr error         // why, set before stopped is closed

	running atomic.Bool
	fenced  atomic.Bool
	noSpace atomic.Bool // the last txn failed with etcd's NOSPACE
	stats   counters
}

// op is one queued write.
type op struct {
	ctx   context.Context // the caller's: an op whose caller gave up is dropped
	key   string
	value string
	del   bool       // delete key instead of putting value
	lease *leases    // put value under this retention's lease; nil: no lease
	done  chan error // buffered, receives exactly one reply
}

// NewWriter returns a Writer for the term fence, writing under
// keyspace.Tasks(prefix) (and, with PutValue and Delete, elsewhere under
// prefix). It does not talk to etcd yet; Run checks the arguments.
func NewWriter(cli *clientv3.Client, prefix string, fence Fence, cfg Config) *Writer {
	cfg = cfg.withDefaults()
	return &Writer{
		cli:     cli,
		prefix:  prefix,
		fence:   fence,
		cfg:     cfg,
		log:     cfg.Logger,
		leases:  newLeases(cli, cfg.Retention, cfg.MaxLeaseKeys),
		failed:  newLeases(cli, cfg.FailedRetention, cfg.MaxLeaseKeys),
		queue:   make(chan *op, max(cfg.MaxBatch, 1)), // Run refuses MaxBatch < 0
		stopped: make(chan struct{}),
	}
}

// Put writes r as a live record: a new task, one placed on a worker, one
// waiting to be retried. r.State is Pending (also when empty), Running or
// Retrying; Put sets r.Term to the fence's term, checks r, and blocks until
// the txn carrying it commits. It returns an error matching ErrFenced if
// the term is over, ErrInvalidRecord if r is not valid (or in a final
// state: see Complete), ErrNoSpace if etcd is out of space, and a wrapped
// etcd or context error if the txn failed (the write may or may not have
// happened: retry).
func (w *Writer) Put(ctx context.Context, r Record) error {
	r, err := w.live(r)
	if err == nil {
		err = w.write(ctx, r, false, nil)
	}
	if err != nil {
		return fmt.Errorf("taskstore: cannot put task %s: %w", r.UUID, err)
	}
	return nil
}

// Complete records r in its final state: Done (also when r.State is not
// final) is kept for Retention, Failed and Cancelled for FailedRetention.
// It writes the record under a lease that expires after about that time
// (one lease per time bucket, shared by up to MaxLeaseKeys completions in
// it); a retention of 0 deletes the record. It sets r.Term to the fence's term,
// checks r (a Done record needs its Result), and blocks until the txn
// commits. Errors are those of Put.
func (w *Writer) Complete(ctx context.Context, r Record) error {
	if !r.State.Final() {
		r.State = Done
	}
	r.Term = w.fence.Term
	keep, retention := w.leases, w.cfg.Retention
	if r.State != Done {
		keep, retention = w.failed, w.cfg.FailedRetention
	}
	del := retention == 0
	if del {
		keep = nil
	}
	if err := w.write(ctx, r, del, keep); err != nil {
		return fmt.Errorf("taskstore: cannot complete task %s: %w", r.UUID, err)
	}
	return nil
}

// PutMany writes recs as Put writes each, queued together so that they
// share txns (up to MaxBatch writes each) rather than wait in line one
// after another: a batch of submissions is one group commit. errs[i] is
// recs[i]'s error, nil when it committed.
func (w *Writer) PutMany(ctx context.Context, recs []Record) (errs []error) {
	errs = make([]error, len(recs))
	ops := make([]*op, len(recs))
	for i, r := range recs {
		if r, errs[i] = w.live(r); errs[i] != nil {
			continue
		}
		if ops[i], errs[i] = w.newOp(ctx, r, false, nil); errs[i] == nil {
			errs[i] = w.enqueue(ctx, ops[i])
		}
	}
	for i, o := range ops {
		if o != nil && errs[i] == nil {
			errs[i] = w.wait(ctx, o)
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("taskstore: cannot put task %s: %w", recs[i].UUID, errs[i])
		}
	}
	return errs
}

// live is r as Put writes it: Pending when it has no state, of the
// fence's term; an error for a final state.
func (w *Writer) live(r Record) (Record, error) {
	if r.State == "" {
		r.State = Pending
	}
	if r.State.Final() {
		return r, fmt.Errorf("%w: Put writes a live task, not a %s one (Complete does)", ErrInvalidRecord, r.State)
	}
	r.Term = w.fence.Term
	return r, nil
}

func (w *Writer) write(ctx context.Context, r Record, del bool, lease *leases) error {
	o, err := w.newOp(ctx, r, del, lease)
	if err != nil {
		return err
	}
	return w.submit(ctx, o)
}

// submit queues o and waits for its reply.
func (w *Writer) submit(ctx context.Context, o *op) error {
	if err := w.enqueue(ctx, o); err != nil {
		return err
	}
	return w.wait(ctx, o)
}

// newOp checks r and makes its write.
func (w *Writer) newOp(ctx context.Context, r Record, del bool, lease *leases) (*op, error) {
	if w.fenced.Load() {
		return nil, ErrFenced
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	o := &op{ctx: ctx, key: keyspace.Task(w.prefix, r.UUID), del: del, lease: lease, done: make(chan error, 1)}
	if !del {
		v, err := r.encode()
		if err != nil {
			return nil, err
		}
		o.value = v
	}
	return o, nil
}

// enqueue queues o for Run.
func (w *Writer) enqueue(ctx context.Context, o *op) error {
	select {
	case w.queue <- o:
		return nil
	case <-w.stopped:
		return w.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the reply to a queued o.
func (w *Writer) wait(ctx context.Context, o *op) error {
	select {
	case err := <-o.done:
		return err
	case <-w.stopped:
		select {
		case err := <-o.done: // committed or failed just before the stop
			return err
		default:
			return w.stopErr
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WriterStats counts what a Writer sent to etcd.
type WriterStats struct {
	Txns      int64   // txns sent
	Ops       int64   // writes carried by those txns
	Fenced    int64   // txns refused because the term is over
	Errors    int64   // txns that failed: etcd unreachable, timeout, …
	MeanBatch float64 // Ops / Txns
	Queued    int     // writes waiting for a txn now
}

// Stats returns the counters so far.
func (w *Writer) Stats() WriterStats {
	s := WriterStats{
		Txns:   w.stats.txns.Load(),
		Ops:    w.stats.ops.Load(),
		Fenced: w.stats.fenced.Load(),
		Errors: w.stats.errors.Load(),
		Queued: len(w.queue) + int(w.stats.waiting.Load()),
	}
	if s.Txns > 0 {
		s.MeanBatch = float64(s.Ops) / float64(s.Txns)
	}
	return s
}

type counters struct {
	txns, ops, fenced, errors atomic.Int64
	waiting                   atomic.Int64 // len(batcher.waiting)
}

// check reports what is wrong with the Writer's arguments.
func (w *Writer) check() error {
	switch {
	case w.cli == nil:
		return errors.New("taskstore: etcd client is nil")
	case w.fence.Key == "":
		return errors.New("taskstore: fence key is empty")
	case w.fence.Term <= 0:
		return fmt.Errorf("taskstore: fence term must be positive, got %d", w.fence.Term)
	}
	if err := keyspace.CheckPrefix(w.prefix); err != nil {
		return fmt.Errorf("taskstore: %w", err)
	}
	return w.cfg.Validate()
}
