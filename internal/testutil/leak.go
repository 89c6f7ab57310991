package testutil

import (
	"testing"

	"go.uber.org/goleak"
)

// LeakOptions are the goroutines goleak may find when a package's tests
// end that are not leaks of ours: the embedded etcd server's and grpc's own
// background goroutines wind down asynchronously after Close. Every
// package checks for leaks with this one list (VerifyTestMain).
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/embed.(*Etcd).servePeers.func2"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	}
}

// VerifyTestMain runs a package's tests and fails them when goroutines
// outlive them, other than LeakOptions's. Call it from TestMain.
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, LeakOptions()...) }
