package broker

import (
	"context"
	"fmt"
	"log/slog"
)

// natsLogger adapts a *slog.Logger to server.Logger.
//
// nats-server calls Fatalf when it cannot listen; its own logger would then
// exit the process. This one logs at Error level instead and hands the
// first such message to Start, so a port in use fails Start at once rather
// than after the readiness timeout.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string // buffered(1): first Fatalf message
}

func newNATSLogger(log *slog.Logger) *natsLogger {
	return &natsLogger{
		log:   log.With(slog.String("origin", "nats-server")),
		fatal: make(chan string, 1),
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
	msg := fmt.Sprintf(format, v...)
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
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}

// debugEnabled reports whether the server should produce Debugf lines.
func (l *natsLogger) debugEnabled() bool {
	return l.log.Enabled(context.Background(), slog.LevelDebug)
}
