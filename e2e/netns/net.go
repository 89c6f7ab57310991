//go:build linux

package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Net is one virtual Ethernet segment: a bridge in a namespace of its own
// and, for every Host, a namespace joined to the bridge by a veth pair.
type Net struct {
	// Prefix names every namespace of the Net: the bridge's namespace is
	// Prefix, a host's is Prefix-<host>. It is mp-<name>-<pid>-<k>.
	Prefix string
	// Subnet is 10.99.<k>.0/24; hosts get .1, .2, … in the order added.
	Subnet netip.Prefix

	t     testing.TB
	mu    sync.Mutex
	hosts []*Host
}

const (
	nsDir  = "/run/netns"
	bridge = "br0"
)

// nsName matches the namespaces this package makes: mp-<net>-<pid>-<k>
// (the bridge's) and mp-<net>-<pid>-<k>-<host>.
var nsName = regexp.MustCompile(`^mp-[a-z0-9]+-([0-9]+)-([0-9]+)(-[a-z0-9]+)?$`)

// hostName is what AddHost accepts: short enough for "v-<name>" to be an
// interface name (15 bytes at most).
var hostName = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// newMu makes picking a subnet and creating the bridge's namespace atomic
// within the process, so parallel tests get different subnets.
var newMu sync.Mutex

// New creates an empty Net for t and removes it, with every process still
// running in it, when t ends, whether t passed or not. It first removes what
// earlier test processes that died without cleaning up left behind. name is
// reduced to lower-case letters and digits and identifies the Net in the
// namespace names. New calls Require, so t is skipped without MESHPOOL_E2E=1.
//
// Like t.Fatal, New and AddHost must be called from the test's goroutine.
func New(t testing.TB, name string) *Net {
	t.Helper()
	Require(t)
	name = sanitize(name)

	newMu.Lock()
	defer newMu.Unlock()
	removeLeftovers(t)
	k, err := freeSubnet()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	n := &Net{
		Prefix: fmt.Sprintf("mp-%s-%d-%d", name, os.Getpid(), k),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(k), 0}), 24),
		t:      t,
	}
	if err := ip("netns", "add", n.Prefix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.remove)
	for _, args := range [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"link", "set", bridge, "up"},
	} {
		if err := ip(append([]string{"-n", n.Prefix}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// AddHost creates the namespace <Prefix>-<name> with lo up and eth1 at the
// next address of the subnet, joined to the bridge. name is 1 to 12
// lower-case letters or digits, unique in the Net.
func (n *Net) AddHost(name string) *Host {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !hostName.MatchString(name) {
		n.t.Fatalf("netns: host name %q: want 1 to 12 lower-case letters or digits", name)
	}
	if slices.ContainsFunc(n.hosts, func(h *Host) bool { return h.Name == name }) {
		n.t.Fatalf("netns: host %q added twice", name)
	}
	if len(n.hosts) == 254 {
		n.t.Fatalf("netns: %s is full", n.Subnet)
	}
	addr := n.Subnet.Addr().As4()
	addr[3] = byte(len(n.hosts) + 1)
	h := &Host{
		Name: name,
		NS:   n.Prefix + "-" + name,
		IP:   netip.AddrFrom4(addr).String(),
		veth: "v-" + name,
		net:  n,
	}
	sw, in := []string{"-n", n.Prefix}, []string{"-n", h.NS}
	steps := [][]string{
		{"netns", "add", h.NS},
		// Made in the bridge's namespace with the inside end created
		// directly in the host's: no name ever appears in the root namespace.
		append(sw, "link", "add", h.veth, "type", "veth", "peer", "name", "eth1", "netns", h.NS),
		append(sw, "link", "set", h.veth, "master", bridge, "up"),
		append(in, "link", "set", "lo", "up"),
		append(in, "addr", "add", h.IP+"/24", "dev", "eth1"),
		append(in, "link", "set", "eth1", "up"),
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			n.t.Fatal(err)
		}
	}
	n.hosts = append(n.hosts, h)
	return h
}

// remove kills every process left in the Net's namespaces and deletes them;
// the veths and the bridge go with them.
func (n *Net) remove() {
	names, err := namespaces()
	if err != nil {
		n.t.Errorf("netns: cannot remove %s: %v", n.Prefix, err)
		return
	}
	for _, ns := range names {
		if ns == n.Prefix || strings.HasPrefix(ns, n.Prefix+"-") {
			if err := removeNamespace(ns); err != nil {
				n.t.Errorf("netns: %v", err)
			}
		}
	}
}

// removeLeftovers deletes the namespaces of Nets whose test process is gone.
func removeLeftovers(t testing.TB) {
	names, err := namespaces()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	for _, ns := range names {
		if pid, _, ok := parseName(ns); ok && !alive(pid) {
			if err := removeNamespace(ns); err != nil {
				t.Fatalf("netns: cannot remove a leftover of an earlier run: %v", err)
			}
			t.Logf("netns: removed %s, left over by process %d", ns, pid)
		}
	}
}

// freeSubnet picks the lowest k in 1..254 that no live Net uses and that no
// address or route of the root namespace overlaps within 10.99.0.0/16.
func freeSubnet() (int, error) {
	used := map[int]bool{}
	names, err := namespaces()
	if err != nil {
		return 0, err
	}
	for _, ns := range names {
		if _, k, ok := parseName(ns); ok {
			used[k] = true
		}
	}
	routes, err := ipOutput("-4", "route", "show", "table", "all")
	if err != nil {
		return 0, err
	}
	addrs, err := ipOutput("-4", "-o", "addr", "show")
	if err != nil {
		return 0, err
	}
	var taken []netip.Prefix
	for _, f := range strings.Fields(routes + " " + addrs) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || !a.Is4() {
				continue
			}
			p = netip.PrefixFrom(a, 32)
		}
		if p.Bits() > 16 {
			taken = append(taken, p.Masked())
		}
	}
	for k := 1; k <= 254; k++ {
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(k), 0}), 24)
		if !used[k] && !slices.ContainsFunc(taken, c.Overlaps) {
			return k, nil
		}
	}
	return 0, errors.New("no free subnet in 10.99.0.0/16")
}

// namespaces lists the named network namespaces.
func namespaces() ([]string, error) {
	entries, err := os.ReadDir(nsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %w", nsDir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// removeNamespace kills the processes in ns and deletes it.
func removeNamespace(ns string) error {
	out, err := ipOutput("netns", "pids", ns)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		// The test process itself is listed if its main thread is stuck in
		// ns (see Host.inside); it must not kill itself.
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ip("netns", "del", ns)
}

// parseName returns the owning pid and the subnet number of a namespace
// made by this package (k is 0 for Require's probe).
func parseName(ns string) (pid, k int, ok bool) {
	m := nsName.FindStringSubmatch(ns)
	if m == nil {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(m[1])
	k, err2 := strconv.Atoi(m[2])
	return pid, k, err1 == nil && err2 == nil && k <= 254
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// sanitize keeps the lower-case letters and digits of name, at most 16.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() < 16 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "net"
	}
	return b.String()
}
