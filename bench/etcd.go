package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdclient"
)

// putValue is about the size of a task record.
var putValue = strings.Repeat("x", 200)

// serialPuts is the serial baseline of durable throughput: one client,
// sequential 200-byte puts for d.
func serialPuts(ctx context.Context, cli *clientv3.Client, d time.Duration) (float64, error) {
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := cli.Put(ctx, fmt.Sprintf("/bench/puts/%d", n%100), putValue); err != nil {
			return 0, fmt.Errorf("cannot put: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// etcdCapacity is etcd's write capacity: keys written per second by
// workers goroutines spread over clients connections for d, each sending
// Txns of batch puts (batch 1: a plain Put).
func etcdCapacity(ctx context.Context, e *env, clients, workers, batch int, d time.Duration) (float64, error) {
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		cli, err := etcdclient.New([]string{e.etcdEndpoint}, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("cannot connect to etcd: %w", err)
		}
		defer cli.Close()
		clis[i] = cli
	}
	var (
		keys     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		cli := clis[w%clients]
		wg.Go(func() {
			for i := 0; time.Since(start) < d; i++ {
				var err error
				if batch == 1 {
					_, err = cli.Put(ctx, fmt.Sprintf("/bench/cap/%d/%d", w, i%16), putValue)
				} else {
					ops := make([]clientv3.Op, batch)
					for j := range ops {
						ops[j] = clientv3.OpPut(fmt.Sprintf("/bench/txn/%d/%d", w, j), putValue)
					}
					_, err = cli.Txn(ctx).Then(ops...).Commit()
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				keys.Add(int64(batch))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("cannot write to etcd: %w", firstErr)
	}
	return float64(keys.Load()) / time.Since(start).Seconds(), nil
}

// compact compacts etcd's history up to now and waits for it, so that the
// next run does not pay for the last one's revisions.
func compact(ctx context.Context, cli *clientv3.Client) error {
	resp, err := cli.Get(ctx, "/bench/none")
	if err != nil {
		return fmt.Errorf("cannot read the etcd revision: %w", err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("cannot compact etcd: %w", err)
	}
	return nil
}

// grpcCounts is etcd's grpc_server_msg_received_total: requests (unary
// calls and messages on streams) received, by "type method".
type grpcCounts map[string]float64

// etcdCounts reads etcd's /metrics.
func (e *env) etcdCounts(ctx context.Context) (grpcCounts, error) {
	return e.countsAt(ctx, e.etcdURL)
}

// countsAt reads the /metrics of the etcd member whose client URL is url.
func (e *env) countsAt(ctx context.Context, url string) (grpcCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("cannot ask etcd for /metrics: %w", err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot ask etcd for /metrics: %w", err)
	}
	defer resp.Body.Close()
	counts := grpcCounts{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "grpc_server_msg_received_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		counts[label(labels, "grpc_type")+" "+label(labels, "grpc_method")] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read etcd's /metrics: %w", err)
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("etcd's /metrics has no grpc_server_msg_received_total")
	}
	return counts, nil
}

// label returns the value of name in a Prometheus label list.
func label(labels, name string) string {
	_, v, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// etcdRates is what etcd received per second over a window.
type etcdRates struct {
	total, unary, stream float64
	byMethod             map[string]float64
}

// rates is (after - before) / seconds.
func rates(before, after grpcCounts, seconds float64) etcdRates {
	r := etcdRates{byMethod: map[string]float64{}}
	for k, v := range after {
		d := (v - before[k]) / seconds
		if d == 0 {
			continue
		}
		r.total += d
		typ, method, _ := strings.Cut(k, " ")
		if typ == "unary" {
			r.unary += d
		} else {
			r.stream += d
		}
		r.byMethod[method] += d
	}
	return r
}
