//go:build linux

package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
	leader, kid := readPid(t, filepath.Join(dir, "leader.pid")), readPid(t, filepath.Join(dir, "child.pid"))
	t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) }) // should the test fail
	if processGone(leader) || processGone(kid) {
		t.Fatal("the program is gone before its cancel")
	}
	if ack := r.cancel(task.UUID, r.w.id, term); !ack.Accepted || ack.Reason != "" {
		t.Fatalf("cancel: ack %+v, want accepted", ack)
	}
	testutil.Eventually(t, 10*time.Second, "the program and its child gone", func() bool { return processGone(leader) && processGone(kid) })
	testutil.Eventually(t, 10*time.Second, "the slot free", func() bool { return r.w.inFlight.Load() == 0 })
	r.noResult(task.UUID)
}

// readPid polls path until a script has written a pid to it.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testutil.EventuallyNil(t, 10*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasSuffix(b, []byte("\n")) {
			return fmt.Errorf("%s: %q is not a whole line yet", path, b)
		}
		pid, err = strconv.Atoi(string(bytes.TrimSpace(b)))
		return err
	})
	return pid
}

// processGone reports whether process pid has ended: kill -0 finds none,
// or it is a zombie its parent has yet to reap.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	i := bytes.LastIndexByte(stat, ')') // the state follows the command's name
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
