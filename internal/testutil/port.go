package testutil

import (
	"net"
	"testing"
)

// FreePort returns a TCP port on host that was free a moment ago. Another
// process may take it before the caller binds it: a caller that can, tries
// again with another.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
