package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The work queue every JetStream baseline runs: one stream, one durable
// pull consumer that all workers share.
const (
	jsStream   = "JOBS"
	jsSubject  = "jobs"
	jsConsumer = "workers"
	jsWorkers  = 3 // worker processes, as meshpool's 3 nodes
)

// jsProcessKinds are the processes a JetStream load is charged with.
var jsProcessKinds = []string{"servers", "workers", "load generator"}

// jsLoadResult is one throughput load of a JetStream system.
type jsLoadResult struct {
	rate float64            // jobs per second
	took time.Duration      // first publish to the last ack seen
	cpu  map[string]float64 // µs of CPU per job, by jsProcessKinds
}

// connect connects to the first server, trying until it listens.
func (s *jsSystem) connect(ctx context.Context) (*nats.Conn, error) {
	var nc *nats.Conn
	var last error
	err := poll(ctx, readyTimeout, 20*time.Millisecond, func() bool {
		nc, last = nats.Connect(s.urls[0], nats.Name("bench jetstream setup"))
		return last == nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w: %w\n%s", s.urls[0], err, last, s.output())
	}
	return nc, nil
}

// makeStream makes the work queue stream (file store, the spec's
// replicas) and its durable pull consumer with explicit acks, trying until
// the servers have elected their JetStream leaders, and returns the name
// of the stream's leader.
func (s *jsSystem) makeStream(ctx context.Context, js jetstream.JetStream) (string, error) {
	cfg := jetstream.StreamConfig{Name: jsStream, Subjects: []string{jsSubject}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Replicas: s.spec.replicas}
	var leader string
	var last error
	err := poll(ctx, readyTimeout, 50*time.Millisecond, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := js.CreateStream(cctx, cfg)
		if err != nil {
			last = fmt.Errorf("cannot make the stream: %w", err)
			return false
		}
		if _, err := st.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{Durable: jsConsumer, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			last = fmt.Errorf("cannot make the consumer: %w", err)
			return false
		}
		info, err := st.Info(cctx)
		if err != nil {
			last = fmt.Errorf("cannot read the stream: %w", err)
			return false
		}
		if info.Cluster != nil {
			leader = info.Cluster.Leader
		}
		last = errors.New("the stream has no leader yet")
		return s.spec.replicas == 1 || leader != ""
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w\n%s", err, last, s.output())
	}
	return leader, nil
}

// clientURL is where the load generator connects: a server that is not the
// stream's leader where there is one, as meshpool's load generator dials a
// worker and not the master, so that each job crosses a route to be
// stored.
func (s *jsSystem) clientURL(leader string) string {
	for i, name := range s.names {
		if name != leader {
			return s.urls[i]
		}
	}
	return s.urls[0]
}

// jsLoad publishes n jobs through url with up to inflight pub acks
// pending, and waits until every job's ack from a worker is seen.
func jsLoad(ctx context.Context, s *jsSystem, url string, n, inflight int) (jsLoadResult, error) {
	var res jsLoadResult
	nc, err := nats.Connect(url, nats.Name("bench jetstream load"))
	if err != nil {
		return res, fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	defer nc.Close()
	w, err := watchAcks(nc)
	if err != nil {
		return res, err
	}
	var failed atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inflight),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return res, fmt.Errorf("cannot use JetStream: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	all := w.at(n)
	before, err := s.cpu()
	if err != nil {
		return res, err
	}
	began := time.Now()
	for range n {
		if lctx.Err() != nil {
			return res, fmt.Errorf("cannot publish: %w", lctx.Err())
		}
		if _, err := js.PublishAsync(jsSubject, echoBody, jetstream.WithStallWait(10*time.Second)); err != nil {
			return res, fmt.Errorf("cannot publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-lctx.Done():
		return res, fmt.Errorf("%d of %d pub acks outstanding: %w", js.PublishAsyncPending(), n, lctx.Err())
	}
	if f := failed.Load(); f > 0 {
		return res, fmt.Errorf("%d of %d publishes failed", f, n)
	}
	var last time.Time
	select {
	case last = <-all:
	case <-lctx.Done():
		return res, fmt.Errorf("acks of %d of %d jobs seen: %w\n%s", w.count(), n, lctx.Err(), s.output())
	}
	after, err := s.cpu()
	if err != nil {
		return res, err
	}
	res.took = last.Sub(began)
	res.rate = float64(n) / res.took.Seconds()
	res.cpu = map[string]float64{}
	for k, v := range after {
		res.cpu[k] = (v - before[k]) / float64(n)
	}
	return res, nil
}

// drained waits until the stream holds no message: every job acked and
// removed.
func drained(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, jsStream)
	if err != nil {
		return fmt.Errorf("cannot read the stream: %w", err)
	}
	var msgs uint64
	err = poll(ctx, 10*time.Second, 5*time.Millisecond, func() bool {
		info, err := st.Info(ctx)
		if err != nil {
			return false
		}
		msgs = info.State.Msgs
		return msgs == 0
	})
	if err != nil {
		return fmt.Errorf("%d jobs still in the stream after the load: %w", msgs, err)
	}
	return nil
}

// jsLatency is n sequential jobs through url, one in flight, after 20
// warm-up jobs: each from before its publish until both its pub ack
// (stored) and its worker's ack (seen) have come.
func jsLatency(ctx context.Context, url string, n int) (latencies, error) {
	nc, err := nats.Connect(url, nats.Name("bench jetstream latency"))
	if err != nil {
		return latencies{}, fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	defer nc.Close()
	w, err := watchAcks(nc)
	if err != nil {
		return latencies{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return latencies{}, fmt.Errorf("cannot use JetStream: %w", err)
	}
	jobs := 0
	one := func() (time.Duration, error) {
		jobs++
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		acked := w.at(jobs)
		start := time.Now()
		if _, err := js.Publish(jctx, jsSubject, echoBody); err != nil {
			return 0, fmt.Errorf("cannot publish: %w", err)
		}
		select {
		case <-acked:
		case <-jctx.Done():
			return 0, fmt.Errorf("no ack seen for job %d: %w", jobs, jctx.Err())
		}
		return time.Since(start), nil
	}
	for range 20 { // warm-up
		if _, err := one(); err != nil {
			return latencies{}, err
		}
	}
	ds := make([]time.Duration, 0, n)
	for range n {
		d, err := one()
		if err != nil {
			return latencies{}, err
		}
		ds = append(ds, d)
	}
	return percentiles(ds), nil
}

// ackWatch sees the acks that workers send, by subscribing to them
// ($JS.ACK.>) as any client may: it gets each one when the server that
// holds the consumer does, as meshpool's load generator gets a result on
// results when the master does. It counts the distinct jobs acked.
type ackWatch struct {
	mu      sync.Mutex
	seen    map[uint64]bool // stream sequences acked
	waiters []ackWaiter
}

// ackWaiter is told the time the n-th distinct job's ack was seen.
type ackWaiter struct {
	n  int
	ch chan time.Time
}

// watchAcks subscribes to the acks on nc; they stop with nc.
func watchAcks(nc *nats.Conn) (*ackWatch, error) {
	w := &ackWatch{seen: map[uint64]bool{}}
	sub, err := nc.Subscribe("$JS.ACK.>", w.onAck)
	if err != nil {
		return nil, fmt.Errorf("cannot subscribe to acks: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("cannot subscribe to acks: %w", err)
	}
	if err := nc.Flush(); err != nil {
		return nil, fmt.Errorf("cannot subscribe to acks: %w", err)
	}
	return w, nil
}

func (w *ackWatch) onAck(m *nats.Msg) {
	if len(m.Data) > 0 && string(m.Data) != "+ACK" {
		return // a nak, a term or work in progress: not a completion
	}
	seq, ok := ackSeq(m.Subject)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[seq] {
		return
	}
	w.seen[seq] = true
	n := len(w.seen)
	w.waiters = slices.DeleteFunc(w.waiters, func(x ackWaiter) bool {
		if x.n > n {
			return false
		}
		x.ch <- now
		return true
	})
}

// at returns a channel that is sent the time the n-th distinct job's ack
// is seen (now, if that is already so).
func (w *ackWatch) at(n int) <-chan time.Time {
	ch := make(chan time.Time, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) >= n {
		ch <- time.Now()
		return ch
	}
	w.waiters = append(w.waiters, ackWaiter{n: n, ch: ch})
	return ch
}

// count is the distinct jobs whose ack was seen.
func (w *ackWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// ackSeq is the stream sequence of the job an ack subject of jsStream
// names: $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.… (the first
// format) or $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.… (the
// second, which a server flag turns on).
func ackSeq(subject string) (uint64, bool) {
	t := strings.Split(subject, ".")
	var tok string
	switch {
	case len(t) == 9 && t[2] == jsStream:
		tok = t[5]
	case len(t) >= 11 && t[4] == jsStream:
		tok = t[7]
	default:
		return 0, false
	}
	seq, err := strconv.ParseUint(tok, 10, 64)
	return seq, err == nil
}
