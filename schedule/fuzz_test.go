package schedule_test

import (
	"testing"
	"time"
)

// FuzzCron feeds any expression to Validate, Next and Due: none may panic
// (robfig/cron panics on some input), and Due's tick, when there is one,
// is a tick at or before now.
func FuzzCron(f *testing.F) {
	for _, s := range []string{"* * * * *", "@every 1s", "CRON_TZ=UTC", "TZ=Europe/Paris 0 9 * * 1-5", "0 0 29 2 *", "*/0 * * * *", "1-2-3 * * * *", "@every 1h30m", "? ? ? ? ?", "0 0 L * *"} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s := valid(expr)
		_ = s.Validate()
		_ = s.Next(now)
		if tick, _, ok := s.Due(now); ok && (tick.After(now) || !tick.After(s.Created)) {
			t.Fatalf("Due(%s) of %q = %s: not a tick since created and at or before now", now, expr, tick)
		}
	})
}
