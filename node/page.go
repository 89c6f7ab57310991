package node

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
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

// pageCSP is the page's Content-Security-Policy: it loads nothing from
// anywhere, and runs only its own script and style, named by their
// hashes: no other inline script (an injected one) runs.
var pageCSP = "default-src 'none'; connect-src 'self'; script-src " + inlineHash(pageHTML, "script") +
	"; style-src " + inlineHash(pageHTML, "style") + "; img-src 'self' data:"

// inlineHash is the CSP source of the one <tag> element in page: the
// SHA-256 of its content, as browsers hash it.
func inlineHash(page []byte, tag string) string {
	_, rest, ok := bytes.Cut(page, []byte("<"+tag+">"))
	content, _, closed := bytes.Cut(rest, []byte("</"+tag+">"))
	if !ok || !closed || bytes.Contains(rest[len(content):], []byte("<"+tag)) {
		panic("node: page.html must hold exactly one <" + tag + "> element")
	}
	sum := sha256.Sum256(content)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page loads nothing from anywhere: say so to the browser too.
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(pageHTML)
}

// streams serves /stream: results and cluster events as server-sent events,
// read from the node's own NATS connection. It ends every stream when closed.
//
// Every open stream shares one subscription to results and events, held
// while at least one stream is open. Each message is decoded once and
// relayed only if it is a valid result or event, re-encoded from what was
// decoded, never as the bytes received: garbage on the wire never reaches a
// browser. What is refused is counted in refused and logged, rate-limited.
type streams struct {
	nc      *nats.Conn
	log     *slog.Logger
	refused *atomic.Int64
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	subs    []*nats.Subscription // while clients is not empty
}

// streamClient is one open stream's queue.
type streamClient struct {
	msgs    chan streamMsg
	dropped atomic.Int64 // messages lost because the client read too slowly
}

func newStreams(nc *nats.Conn, log *slog.Logger, refused *atomic.Int64) *streams {
	return &streams{nc: nc, log: log, refused: refused, done: make(chan struct{}), clients: make(map[*streamClient]struct{})}
}

// close ends every stream; the HTTP server calls it when it shuts down,
// since Shutdown does not wait for, nor cancel, a request still being served.
// Safe to call twice.
func (s *streams) close() { s.once.Do(func() { close(s.done) }) }

type streamMsg struct {
	event string
	data  []byte
}

// join adds a client, subscribing for the first one. It fails when there
// are maxStreams clients already or the subscription cannot be made.
func (s *streams) join() (*streamClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) >= maxStreams {
		return nil, errTooManyStreams
	}
	if len(s.clients) == 0 {
		for _, subject := range []string{message.SubjectResults, message.SubjectEvents} {
			sub, err := s.nc.Subscribe(subject, s.relay)
			if err != nil {
				s.unsubscribe()
				return nil, fmt.Errorf("cannot subscribe: %w", err)
			}
			s.subs = append(s.subs, sub)
		}
	}
	c := &streamClient{msgs: make(chan streamMsg, streamBuffer)}
	s.clients[c] = struct{}{}
	return c, nil
}

// leave removes a client, unsubscribing after the last one.
func (s *streams) leave(c *streamClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, c)
	if len(s.clients) == 0 {
		s.unsubscribe()
	}
}

// unsubscribe is called with s.mu held.
func (s *streams) unsubscribe() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.subs = nil
}

var errTooManyStreams = errors.New("too many streams")

// relay is the NATS callback. It never blocks: a slow client loses
// messages, the node's connection does not stall.
func (s *streams) relay(m *nats.Msg) {
	out, err := checkStreamMsg(m.Subject, m.Data)
	if err != nil {
		s.refused.Add(1)
		s.log.Warn("message refused, not relayed to /stream", ratelog.Limit, "subject", m.Subject, "bytes", len(m.Data), "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		select {
		case c.msgs <- out:
		default:
			c.dropped.Add(1)
		}
	}
}

// checkStreamMsg decodes and validates a message on results or events and
// gives it back re-encoded, ready for a stream.
func checkStreamMsg(subject string, data []byte) (streamMsg, error) {
	switch subject {
	case message.SubjectResults:
		r, err := message.DecodeResult(data)
		if err != nil {
			return streamMsg{}, err
		}
		return streamMsg{event: "result", data: r.AppendJSON(make([]byte, 0, 256))}, nil
	case message.SubjectEvents:
		e, err := message.DecodeEvent(data)
		if err != nil {
			return streamMsg{}, err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return streamMsg{}, fmt.Errorf("cannot encode event: %w", err)
		}
		return streamMsg{event: "event", data: b}, nil
	}
	return streamMsg{}, fmt.Errorf("not a subject /stream relays")
}

func (s *streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A stream outlives the server's read and write timeouts by design.
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		writeText(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	_ = rc.SetReadDeadline(time.Time{})

	c, err := s.join()
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.leave(c)

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
		if n := c.dropped.Load(); n > 0 {
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
		case m := <-c.msgs:
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
