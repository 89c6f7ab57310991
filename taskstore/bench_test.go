package taskstore_test

import (
	"testing"
	"time"
)

// BenchmarkPut measures Puts from many goroutines through one Writer to an
// embedded etcd in the same process.
func BenchmarkPut(b *testing.B) {
	_, cli := newEtcd(b)
	w := startWriter(b, cli, newFence(b, cli), options(0))
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := w.Put(b.Context(), pending(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := w.Stats()
	b.ReportMetric(s.MeanBatch, "writes/txn")
}

// BenchmarkTask measures one task's writes: Put, then Complete kept under
// the retention lease.
func BenchmarkTask(b *testing.B) {
	_, cli := newEtcd(b)
	w := startWriter(b, cli, newFence(b, cli), options(time.Minute))
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := pending(1)
			if err := w.Put(b.Context(), r); err != nil {
				b.Error(err)
				return
			}
			if err := w.Complete(b.Context(), done(r)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := w.Stats()
	b.ReportMetric(s.MeanBatch, "writes/txn")
}
