//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Host is one namespace of a Net, with lo and eth1 up.
type Host struct {
	// Name is the name given to AddHost.
	Name string
	// NS is the namespace's name, for `ip netns exec` or `ip -n`.
	NS string
	// IP is eth1's address in the Net's subnet.
	IP string

	veth string // the bridge's end of the veth pair
	net  *Net
}

// Command returns a command that runs name inside the host's namespace
// (ip netns exec, which execs name: the process is name itself). It runs in
// a process group of its own, is killed with its group when ctx ends, and
// gets SIGKILL if the test process dies first.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// Partition cuts the host off from every other host: the bridge's end of its
// veth goes down, so eth1 loses carrier and every frame to or from the host
// is dropped. Established TCP connections stall rather than reset; a new
// connection times out, or fails with "no route to host" once ARP for the
// peer has failed (about 3s). The host keeps its address, routes and lo.
func (h *Host) Partition() error {
	return ip("-n", h.net.Prefix, "link", "set", h.veth, "down")
}

// Heal undoes Partition; frames flow again at once. An ARP lookup that
// started during the partition is retried only every second, and a lost
// TCP SYN on TCP's back-off (1s, 2s, …), so the first connection after Heal
// can take about a second.
func (h *Host) Heal() error {
	return ip("-n", h.net.Prefix, "link", "set", h.veth, "up")
}

// DialContext connects from inside the host, like net.Dialer.DialContext,
// so that the test process can talk to the host's network. It fits
// http.Transport.DialContext. address must hold an IP: a name would be
// looked up from the root namespace.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := h.inside(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return conn, err
}

// Listen listens inside the host, like net.Listen.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.inside(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// inside runs fn on an OS thread moved into the host's namespace. A socket
// keeps the namespace it was made in, so what fn opens stays usable
// anywhere. The thread goes back to the root namespace afterwards; if that
// fails it is never given back to the runtime, so no other goroutine ever
// runs in the host's namespace by mistake.
func (h *Host) inside(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: cannot open the current namespace: %w", err)
			return
		}
		defer unix.Close(home)
		if err := enter(filepath.Join(nsDir, h.NS)); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: cannot enter namespace %s: %w", h.NS, err)
			return
		}
		err = fn()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func enter(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNET)
}
