//go:build !linux

package command

// awaitExit waits until the leader has exited, and reaps it: without
// waitid(WNOWAIT), the group is signalled after its leader's pid is free
// again, a small chance of it being some other group's by then.
func (r *run) awaitExit() {
	defer close(r.exited)
	r.waitErr = r.cmd.Wait()
}

// reap returns the leader's exit, which awaitExit collected.
func (r *run) reap() error { return r.waitErr }
