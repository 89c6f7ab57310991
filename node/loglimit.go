package node

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimitInterval is how often one kind of repeated warning is logged at
// most.
const logLimitInterval = 10 * time.Second

// logLimit lets one kind of warning through at most once per
// logLimitInterval and says how many it held back meanwhile: input from
// others (forged results, bad reply subjects) must not flood the log. Its
// zero value is ready to use.
type logLimit struct {
	mu   sync.Mutex
	next time.Time
	held int
}

func (l *logLimit) log(log *slog.Logger, level slog.Level, msg string, attrs ...any) {
	now := time.Now()
	l.mu.Lock()
	if now.Before(l.next) {
		l.held++
		l.mu.Unlock()
		return
	}
	held := l.held
	l.next, l.held = now.Add(logLimitInterval), 0
	l.mu.Unlock()
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	log.Log(context.Background(), level, msg, attrs...)
}

// truncate bounds what a log line quotes of a string from others.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
