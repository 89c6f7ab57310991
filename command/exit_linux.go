package command

import "golang.org/x/sys/unix"

// awaitExit waits until the leader has exited but leaves it unreaped, a
// zombie: its pid, which is also its group's id, cannot be taken by another
// process until reap, so signals to the group reach no stranger.
func (r *run) awaitExit() {
	defer close(r.exited)
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, r.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return // any other error, reap reports
		}
	}
}

// reap collects the leader's exit.
func (r *run) reap() error {
	r.waitErr = r.cmd.Wait()
	return r.waitErr
}
