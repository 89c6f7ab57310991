//go:build linux

package node

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/command"
	"github.com/meshpool/meshpool/internal/testutil"
)

// A cancelled --exec task leaves no process: its program and what it
// started are gone, and no result is published.
func TestWorkerCancelExec(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "task.sh")
	body := "#!/bin/sh\nsleep 60 &\necho $! > \"$DIR/child.pid\"\necho $$ > \"$DIR/leader.pid\"\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := command.New(script, command.Options{KillGrace: 2 * time.Second, Env: []string{"DIR=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	mux := meshpool.NewMux()
	mux.Handle("exec", h)
	r, term := newHandlerRig(t, 1, mux)

	task := r.task("exec", term)
	r.sendTask(task)
	leader, kid := testutil.ReadPID(t, filepath.Join(dir, "leader.pid")), testutil.ReadPID(t, filepath.Join(dir, "child.pid"))
	t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) }) // should the test fail
	if testutil.ProcessGone(leader) || testutil.ProcessGone(kid) {
		t.Fatal("the program is gone before its cancel")
	}
	if ack := r.cancel(task.UUID, r.w.id, term); !ack.Accepted || ack.Reason != "" {
		t.Fatalf("cancel: ack %+v, want accepted", ack)
	}
	testutil.Eventually(t, 10*time.Second, "the program and its child gone", func() bool { return testutil.ProcessGone(leader) && testutil.ProcessGone(kid) })
	testutil.Eventually(t, 10*time.Second, "the slot free", func() bool { return r.w.inFlight.Load() == 0 })
	r.noResult(task.UUID)
}
