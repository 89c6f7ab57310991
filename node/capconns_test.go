package node

import (
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	go func() { _ = srv.Serve(capConns(ln, 3, &refused)) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

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
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	if srv.IdleTimeout != 30*time.Second {
		t.Fatalf("idle timeout %s, want 30s", srv.IdleTimeout)
	}
}
