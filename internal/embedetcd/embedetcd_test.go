package embedetcd_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/meshpool/meshpool/internal/embedetcd"
)

// Start retries with new ports when the ones it picked were taken meanwhile;
// that relies on a port in use coming back as EADDRINUSE.
func TestPortInUseIsEADDRINUSE(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = embedetcd.Start(embedetcd.Config{Dir: t.TempDir(), ClientPort: port, PeerPort: port + 1})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want EADDRINUSE", err)
	}
}
