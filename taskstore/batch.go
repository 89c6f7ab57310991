package taskstore

import (
	"context"
	"fmt"
)

// Run commits the queued writes until ctx ends. Then it waits for the txns
// in flight (their context ends too), fails every write still waiting with
// ctx's error (wrapped), and returns nil. It returns an error at once if the
// Writer's arguments are not valid or Run was called before.
//
// Group commit: Run sends what is queued (up to MaxBatch writes) as one
// fenced txn. When no txn is in flight it sends at once, however few writes
// wait: a lone write never waits for a batch to fill. While a txn is in
// flight, the writes that arrive pile up into the next batch, which goes out
// when a txn finishes, or at once in another txn slot (up to MaxInFlight) if
// a full batch is waiting. Extra slots thus serve only heavy load, and a
// write waits at most about one txn for the one ahead of it: small txns cost
// etcd nearly as much as full ones.
//
// Two writes of one key never share a txn (etcd refuses duplicate keys) and
// never race in two txns: the later one waits until the earlier one's txn is
// done, so the writes of a key apply in the order they were queued.
func (w *Writer) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errRunTwice
	}
	if err := w.check(); err != nil {
		w.stop(err)
		return err
	}
	w.log.Debug("task writer started", "fence_key", w.fence.Key, "term", w.fence.Term)
	b := &batcher{
		w:        w,
		busy:     make(map[string]struct{}),
		blocked:  make(map[string]struct{}),
		finished: make(chan finished, w.cfg.MaxInFlight),
	}
	for {
		if ctx.Err() == nil && b.inFlight < w.cfg.MaxInFlight &&
			(b.inFlight == 0 || len(b.waiting)+len(w.queue) >= w.cfg.MaxBatch) {
			if batch := b.take(); len(batch) > 0 {
				b.dispatch(ctx, batch)
				continue
			}
		}
		var queue chan *op // nil while a full batch waits: let writes pile up
		if len(b.waiting) < w.cfg.MaxBatch {
			queue = w.queue
		}
		select {
		case <-ctx.Done():
			b.shutdown(fmt.Errorf("writer stopped: %w", ctx.Err()))
			w.log.Debug("task writer stopped")
			return nil
		case o := <-queue:
			b.waiting = append(b.waiting, o)
			w.stats.waiting.Store(int64(len(b.waiting)))
		case f := <-b.finished:
			b.finish(f)
		}
	}
}

// batcher is Run's state; only Run's goroutine touches it.
type batcher struct {
	w        *Writer
	waiting  []*op               // taken from the queue, not sent yet, in queue order
	busy     map[string]struct{} // keys written by the txns in flight
	blocked  map[string]struct{} // scratch for take
	inFlight int
	finished chan finished
}

type finished struct {
	batch []*op
	err   error
}

// take builds the next batch: the waiting writes first, then the queue,
// skipping the writes whose key is in flight, already in the batch, or held
// back behind an earlier write of the same key.
func (b *batcher) take() []*op {
	if b.w.fenced.Load() {
		b.failAll(ErrFenced)
		return nil
	}
	max := b.w.cfg.MaxBatch
	clear(b.blocked)
	var batch []*op
	// add puts o in the batch, or reports false if it must wait.
	add := func(o *op) bool {
		if err := o.ctx.Err(); err != nil {
			o.done <- err // its caller has given up; nobody reads this
			return true
		}
		_, busy := b.busy[o.key]
		_, blocked := b.blocked[o.key]
		b.blocked[o.key] = struct{}{}
		if busy || blocked || len(batch) == max {
			return false
		}
		if batch == nil {
			batch = make([]*op, 0, min(max, len(b.waiting)+len(b.w.queue)+1))
		}
		batch = append(batch, o)
		return true
	}
	keep := b.waiting[:0]
	for _, o := range b.waiting {
		if !add(o) {
			keep = append(keep, o)
		}
	}
	clear(b.waiting[len(keep):])
	b.waiting = keep
	defer func() { b.w.stats.waiting.Store(int64(len(b.waiting))) }()
	for len(batch) < max {
		select {
		case o := <-b.w.queue:
			if !add(o) {
				b.waiting = append(b.waiting, o)
			}
		default:
			return batch
		}
	}
	return batch
}

// dispatch sends batch as one txn in its own goroutine.
func (b *batcher) dispatch(ctx context.Context, batch []*op) {
	for _, o := range batch {
		b.busy[o.key] = struct{}{}
	}
	b.inFlight++
	go func() {
		b.finished <- finished{batch, b.w.commit(ctx, batch)}
	}()
}

// finish releases the keys of a txn that is done and replies to its callers.
func (b *batcher) finish(f finished) {
	b.inFlight--
	for _, o := range f.batch {
		delete(b.busy, o.key)
	}
	for _, o := range f.batch {
		o.done <- f.err
	}
}

// failAll fails every write waiting or queued with err.
func (b *batcher) failAll(err error) {
	for _, o := range b.waiting {
		o.done <- err
	}
	clear(b.waiting)
	b.waiting = b.waiting[:0]
	b.w.stats.waiting.Store(0)
	for {
		select {
		case o := <-b.w.queue:
			o.done <- err
		default:
			return
		}
	}
}

// shutdown waits for the txns in flight (ctx has ended, so they end soon),
// marks the Writer stopped and fails what is still waiting.
func (b *batcher) shutdown(err error) {
	for b.inFlight > 0 {
		b.finish(<-b.finished)
	}
	b.w.stop(err)
	b.failAll(err)
}

// stop makes every later or waiting call fail with err.
func (w *Writer) stop(err error) {
	w.stopErr = err
	close(w.stopped)
}
