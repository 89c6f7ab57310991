//go:build linux

package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Process is a program started in a host by Start.
type Process struct {
	// Name is "<host>: <program> <first argument>", as in the test log.
	Name string

	pid  int
	out  lockedBuffer
	done chan struct{}
	err  error
}

// Start runs name with args in the host until it exits or t ends. When t
// ends the process group is killed; if t failed (or MESHPOOL_E2E_LOGS is set
// and the test is verbose), the start and the end of its output go into the
// test log. With MESHPOOL_E2E_LOGDIR set, the whole output is also written
// to <dir>/<test>.<host>.<program>.log.
func (h *Host) Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: h.Name + ": " + filepath.Base(name), done: make(chan struct{})}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		p.Name += " " + args[0]
	}
	cmd := h.Command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("netns: cannot start %s: %v", p.Name, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() || testing.Verbose() && os.Getenv("MESHPOOL_E2E_LOGS") != "" {
			t.Logf("--- output of %s ---\n%s", p.Name, abridge(p.Output(), 6000, 10000))
		}
		if dir := os.Getenv("MESHPOOL_E2E_LOGDIR"); dir != "" {
			file := fmt.Sprintf("%s.%s.%s.log", strings.ReplaceAll(t.Name(), "/", "_"), h.Name, filepath.Base(name))
			if err := os.WriteFile(filepath.Join(dir, file), []byte(p.Output()), 0o644); err != nil {
				t.Errorf("netns: cannot save the output of %s: %v", p.Name, err)
			}
		}
	})
	return p
}

// Output is everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(p.pid, sig); err != nil {
		return fmt.Errorf("netns: cannot signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill kills the process group and waits for the process to exit. It is
// safe to call more than once.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns how it ended: nil for exit
// code 0, an *exec.ExitError otherwise.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// abridge keeps about the first head and the last tail bytes of s, in whole
// lines: start-up and the end are what explain a failure.
func abridge(s string, head, tail int) string {
	if len(s) <= head+tail {
		return s
	}
	h := s[:head]
	if i := strings.LastIndexByte(h, '\n'); i >= 0 {
		h = h[:i+1]
	}
	t := s[len(s)-tail:]
	if i := strings.IndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return fmt.Sprintf("%s… %d bytes left out …\n%s", h, len(s)-len(h)-len(t), t)
}
