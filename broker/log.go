package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/meshpool/meshpool/internal/secret"
)

// natsLogger adapts a *slog.Logger to server.Logger.
//
// nats-server calls Fatalf when it cannot listen; its own logger would then
// exit the process. This one logs at Error level instead and hands the
// first such message to Start, so a port in use fails Start at once rather
// than after the readiness timeout.
//
// Every line passes through redact: the server prints route URLs with their
// user info in a few places, and the route secret must never be logged.
type natsLogger struct {
	log    *slog.Logger
	fatal  chan string // buffered(1): first Fatalf message
	redact secret.Redactor
}

func newNATSLogger(log *slog.Logger, redact secret.Redactor) *natsLogger {
	return &natsLogger{
		log:    log.With(slog.String("origin", "nats-server")),
		fatal:  make(chan string, 1),
		redact: redact,
	}
}

// Noticef logs at Debug level: nats-server's notices are its start-up banner
// and a line per reload, which the node's own logs already say better.
func (l *natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Warnf logs at Warn level.
func (l *natsLogger) Warnf(format string, v ...any) { l.logf(slog.LevelWarn, format, v) }

// Errorf logs at Error level.
func (l *natsLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }

// Debugf logs at Debug level.
func (l *natsLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Tracef logs at Debug level. The server only calls it when protocol
// tracing is on, which Broker never turns on (it logs every message).
func (l *natsLogger) Tracef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Fatalf logs at Error level and records the message for Start; it never
// exits.
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := l.redact.Redact(fmt.Sprintf(format, v...))
	l.log.Error(msg, slog.Bool("fatal", true))
	select {
	case l.fatal <- msg:
	default:
	}
}

func (l *natsLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := l.redact.Redact(fmt.Sprintf(format, v...))
	if hint := routeRefusalHint(msg); hint != "" {
		l.log.Log(ctx, level, msg, slog.String("reason", hint))
		return
	}
	l.log.Log(ctx, level, msg)
}

// routeRefusalHint explains nats-server's terse lines about a refused
// route, so that an operator (or a refused node's own log) says why.
func routeRefusalHint(msg string) string {
	switch {
	case strings.Contains(msg, "Route Error 'Authorization Violation'"):
		return "route refused: the peer does not accept this node's route secret (the route secrets differ)"
	case strings.Contains(msg, " - rid:") && strings.Contains(msg, "authentication error"):
		return "route refused: a peer connecting here did not authenticate (its route secret or TLS settings differ from this node's)"
	case strings.Contains(msg, "TLS route handshake error"):
		return "route refused: TLS handshake failed (a certificate not from the cluster CA, expired, or TLS on one side only)"
	}
	return ""
}
