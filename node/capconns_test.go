package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// An HTTP listener holds at most its cap of open connections: one more is
// closed at once and counted; closing one makes room again.
func TestHTTPConnectionsAreCapped(t *testing.T) {
	srv, addr, refused := cappedServer(t, 3, 0)

	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		idle = append(idle, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("a connection beyond the cap: read %d, %v; want it closed", n, err)
	}
	if got := refused.Load(); got != 1 {
		t.Fatalf("refused %d, want 1", got)
	}
	_ = idle[0].Close()
	eventuallyServed(t, addr)
	if srv.IdleTimeout != 30*time.Second {
		t.Fatalf("idle timeout %s, want 30s", srv.IdleTimeout)
	}
}

// An idle keep-alive connection is closed after the server's idle timeout,
// and its slot is free again: idle connections cannot hold the cap.
func TestIdleHTTPConnectionIsClosedAndFreesItsSlot(t *testing.T) {
	srv, addr, refused := cappedServer(t, 1, 300*time.Millisecond) // httpIdleTimeout, shortened

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server closed the connection after the request; want it kept alive")
	}
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("the idle connection: read %d, %v; want it closed (EOF)", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the idle connection was closed after %s, want about %s", d, srv.IdleTimeout)
	}
	eventuallyServed(t, addr)
	if got := refused.Load(); got != 0 {
		t.Fatalf("refused %d, want 0", got)
	}
}

// cappedServer serves "ok" over HTTP on a loopback listener capped at max
// connections, with idle as the idle timeout (0: newHTTPServer's); it
// returns the server, its
// address and the count of connections refused.
// eventuallyServed waits until a new connection to addr is served.
func eventuallyServed(t *testing.T, addr string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
}

func cappedServer(t *testing.T, max int, idle time.Duration) (*http.Server, string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := new(atomic.Int64)
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	if idle > 0 {
		srv.IdleTimeout = idle
	}
	go func() { _ = srv.Serve(capConns(ln, max, refused)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String(), refused
}
