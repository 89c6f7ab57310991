package node

import (
	_ "embed"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

// The live page: GET / is a single self-contained HTML file (inline CSS and
// JS, no external URLs) that polls /status and listens on /stream.
//
//go:embed page.html
var pageHTML []byte

// Bounds of /stream.
const (
	maxStreams      = 16               // concurrent clients; more get 503
	streamBuffer    = 64               // messages queued per client; more are dropped
	streamHeartbeat = 15 * time.Second // a comment line keeps proxies and browsers from giving up
)

func servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page loads nothing from anywhere: say so to the browser too.
	h.Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(pageHTML)
}

// streams serves /stream: results and cluster events as server-sent events,
// read from the node's own NATS connection. It ends every stream when closed.
type streams struct {
	nc     *nats.Conn
	log    *slog.Logger
	active atomic.Int32
	done   chan struct{}
	once   sync.Once
}

func newStreams(nc *nats.Conn, log *slog.Logger) *streams {
	return &streams{nc: nc, log: log, done: make(chan struct{})}
}

// close ends every stream; the HTTP server calls it when it shuts down,
// since Shutdown does not wait for, nor cancel, a request still being served.
// Safe to call twice.
func (s *streams) close() { s.once.Do(func() { close(s.done) }) }

type streamMsg struct {
	event string
	data  []byte
}

func (s *streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.active.Add(1) > maxStreams {
		s.active.Add(-1)
		writeText(w, http.StatusServiceUnavailable, "too many streams")
		return
	}
	defer s.active.Add(-1)

	// A stream outlives the server's read and write timeouts by design.
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		writeText(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	_ = rc.SetReadDeadline(time.Time{})

	// The NATS callback never blocks: a slow client loses messages, the
	// node's connection does not stall.
	msgs := make(chan streamMsg, streamBuffer)
	var dropped atomic.Int64
	sub := func(subject, event string) (*nats.Subscription, error) {
		return s.nc.Subscribe(subject, func(m *nats.Msg) {
			select {
			case msgs <- streamMsg{event: event, data: m.Data}:
			default:
				dropped.Add(1)
			}
		})
	}
	results, err := sub(message.SubjectResults, "result")
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "cannot subscribe: "+err.Error())
		return
	}
	defer func() { _ = results.Unsubscribe() }()
	events, err := sub(message.SubjectEvents, "event")
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "cannot subscribe: "+err.Error())
		return
	}
	defer func() { _ = events.Unsubscribe() }()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(": meshpool stream\n\n")); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	defer func() {
		if n := dropped.Load(); n > 0 {
			s.log.Info("stream dropped messages for a slow client", "dropped", n, "client", r.RemoteAddr)
		}
	}()

	beat := time.NewTicker(streamHeartbeat)
	defer beat.Stop()
	for {
		var chunk []byte
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-beat.C:
			chunk = []byte(": ping\n\n")
		case m := <-msgs:
			chunk = sseEvent(m)
		}
		// A client that stops reading must not hold the handler forever.
		_ = rc.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
		if _, err := w.Write(chunk); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

// sseEvent frames one message. Payloads are single-line JSON; any newline is
// split over several data lines as the format requires.
func sseEvent(m streamMsg) []byte {
	b := make([]byte, 0, len(m.data)+32)
	b = append(b, "event: "...)
	b = append(b, m.event...)
	b = append(b, '\n')
	start := 0
	for i := 0; i <= len(m.data); i++ {
		if i == len(m.data) || m.data[i] == '\n' {
			line := m.data[start:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			b = append(b, "data: "...)
			b = append(b, line...)
			b = append(b, '\n')
			start = i + 1
		}
	}
	return append(b, '\n')
}
