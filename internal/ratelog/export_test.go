package ratelog

import (
	"log/slog"
	"time"
)

// NewHandlerAt is NewHandler with a clock the test moves.
func NewHandlerAt(next slog.Handler, interval time.Duration, now func() time.Time) *Handler {
	return newHandler(next, interval, now)
}

const MaxKeys = maxKeys
