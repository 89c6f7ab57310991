package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// run is one process of the program, for one task. start sets it up and
// starts its goroutines; supervise is then called once, and returns when all
// of them are done.
type run struct {
	cmd       *exec.Cmd
	maxResult int
	killGrace time.Duration

	// Our ends of the program's stdin, stdout and stderr. Each is used by
	// its own goroutine (feed, readStdout, readStderr); supervise closes
	// them all when it stops waiting for those.
	stdin, stdout, stderr *os.File
	io                    sync.WaitGroup // feed, readStdout and readStderr

	// Written by their goroutines, read once io is done.
	out     []byte // stdout, at most maxResult+1 bytes
	readErr error  // how reading stdout failed, if it did
	errTail tail   // the end of stderr

	tooLarge chan struct{} // closed by readStdout when out passed maxResult

	exited  chan struct{} // closed by awaitExit when the leader has exited
	waitErr error         // the leader's end, set by awaitExit or reap
}

// ending is how a run ended.
type ending struct {
	cancelled bool   // the context ended first, and the group was stopped
	wait      error  // the leader's exit, from exec.Cmd.Wait
	stdout    []byte // at most maxResult+1 bytes
	read      error  // how reading stdout failed, if it did
	stderr    string // its last lines (tail.String)
}

// start starts the program in a process group of its own, with env and
// payload on its stdin.
func start(h *handler, env []string, payload []byte) (*run, error) {
	// ends holds the pipes' ends: stdin's, stdout's, stderr's, read end first.
	var ends [6]*os.File
	for i := 0; i < len(ends); i += 2 {
		var err error
		if ends[i], ends[i+1], err = os.Pipe(); err != nil {
			closeAll(ends[:i]...)
			return nil, fmt.Errorf("command: cannot make a pipe: %w", err)
		}
	}
	cmd := &exec.Cmd{
		Path:   h.path,
		Args:   h.args,
		Env:    env,
		Stdin:  ends[0],
		Stdout: ends[3],
		Stderr: ends[5],
	}
	setGroup(cmd)
	err := cmd.Start()
	closeAll(ends[0], ends[3], ends[5]) // the program's ends: it has its copies
	if err != nil {
		closeAll(ends[1], ends[2], ends[4])
		return nil, fmt.Errorf("command: cannot start: %w", err)
	}
	r := &run{
		cmd:       cmd,
		maxResult: h.maxResult,
		killGrace: h.killGrace,
		stdin:     ends[1],
		stdout:    ends[2],
		stderr:    ends[4],
		tooLarge:  make(chan struct{}),
		exited:    make(chan struct{}),
	}
	r.io.Add(3)
	go r.feed(payload)
	go r.readStdout()
	go r.readStderr()
	go r.awaitExit()
	return r, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// feed writes payload to the program's stdin and closes it. A program that
// exits without reading it all makes the write fail: that is its choice.
func (r *run) feed(payload []byte) {
	defer r.io.Done()
	_, _ = r.stdin.Write(payload)
	_ = r.stdin.Close()
}

// readStdout reads stdout to its end, or until it is larger than allowed.
func (r *run) readStdout() {
	defer r.io.Done()
	r.out, r.readErr = io.ReadAll(io.LimitReader(r.stdout, int64(r.maxResult)+1))
	if errors.Is(r.readErr, os.ErrClosed) {
		r.readErr = nil // supervise stopped waiting for the end (drain)
	}
	if len(r.out) > r.maxResult {
		close(r.tooLarge)
	}
}

// readStderr keeps the end of stderr.
func (r *run) readStderr() {
	defer r.io.Done()
	_, _ = io.Copy(&r.errTail, r.stderr)
}

// supervise waits for the leader to exit, stopping the group first when ctx
// ends or the result is too large. It then kills what is left of the group,
// reaps the leader and collects the output.
func (r *run) supervise(ctx context.Context) ending {
	var e ending
	select {
	case <-r.exited:
	case <-r.tooLarge:
		r.signal(syscall.SIGKILL)
		<-r.exited
	case <-ctx.Done():
		e.cancelled = r.stop()
	}
	r.signal(syscall.SIGKILL) // whatever the leader left behind
	e.wait = r.reap()
	r.drain()
	e.stdout, e.read, e.stderr = r.out, r.readErr, r.errTail.String()
	return e
}

// stop sends SIGTERM to the group, and SIGKILL after the grace if the leader
// has not exited by then. It returns false when the leader had exited
// already: the program finished, and was not stopped.
func (r *run) stop() bool {
	select {
	case <-r.exited:
		return false
	default:
	}
	r.signal(syscall.SIGTERM)
	grace := time.NewTimer(r.killGrace)
	defer grace.Stop()
	select {
	case <-r.exited:
	case <-grace.C:
		r.signal(syscall.SIGKILL)
		<-r.exited
	}
	return true
}

// signal sends sig to the program's process group. The leader is not reaped
// before supervise is done with signals, so the group's id is still ours.
func (r *run) signal(sig syscall.Signal) { signalGroup(r.cmd.Process.Pid, sig) }

// drain waits for the pipe goroutines to finish, once the group is dead.
// Only a process that left the group can still hold a pipe open: drain
// waits for it for at most the grace, then closes our ends.
func (r *run) drain() {
	done := make(chan struct{})
	go func() {
		r.io.Wait()
		close(done)
	}()
	grace := time.NewTimer(r.killGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
	}
	closeAll(r.stdin, r.stdout, r.stderr)
	<-done
}
