//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// EnvVar enables the tests that use this package when set to "1".
const EnvVar = "MESHPOOL_E2E"

// Require skips t unless MESHPOOL_E2E=1. With MESHPOOL_E2E=1 it fails t, with
// the reason, when network namespaces cannot be used here: not root, no ip
// command, or the kernel refusing namespaces, bridges or veths.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvVar) != "1" {
		t.Skipf("netns: skipped; set %s=1 to run tests in network namespaces (needs root and iproute2)", EnvVar)
	}
	if err := usable(); err != nil {
		t.Fatalf("netns: %s=1 but network namespaces are not usable here: %v", EnvVar, err)
	}
}

// usable is checked once per process: it makes a namespace with a bridge and
// a veth in it and removes it again.
var usable = sync.OnceValue(func() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip command on PATH (install iproute2)")
	}
	probe := "mp-probe-" + strconv.Itoa(os.Getpid()) + "-0"
	_ = ip("netns", "del", probe) // a crashed run with our pid
	if err := ip("netns", "add", probe); err != nil {
		return err
	}
	defer ip("netns", "del", probe)
	if err := ip("-n", probe, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	return ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
})
