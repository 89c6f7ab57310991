package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	// DefaultInterval is how often a marked line may repeat.
	DefaultInterval = 10 * time.Second
	// MaxValue is the longest string, error or value a line quotes, in
	// bytes; a longer one is cut and says how long it was.
	MaxValue = 512
	// maxKeys bounds the budgets remembered, since a key may come from the
	// wire. Past it, budgets whose interval ended are forgotten, and if
	// none has, new keys of a message share one budget.
	maxKeys = 1024
	// SuppressedKey is the attribute that says how many lines were held back.
	SuppressedKey = "suppressed"
)

// mark is the value of the attribute Limit and Key add; its type is how the
// handler tells it from an attribute that happens to share its name.
type mark struct{ key string }

// Limit marks a line as one that may repeat at a high rate: at most one line
// per interval with the same message gets through.
var Limit = slog.Any("ratelog", mark{})

// Key marks a line like Limit, with a budget of its own per key (a peer, a
// subject). Keep keys few; past maxKeys live ones, new keys share a budget.
func Key(key string) slog.Attr { return slog.Any("ratelog", mark{key: Truncate(key)}) }

// Handler wraps another handler: it bounds every value and rate-limits
// marked lines. Handlers derived with WithAttrs and WithGroup share their
// parent's budgets.
type Handler struct {
	next     slog.Handler
	interval time.Duration
	state    *state
}

type budgetKey struct{ msg, key string }

type budget struct {
	until      time.Time // lines before this are held back
	suppressed int       // held back since the last line that got through
}

type state struct {
	now     func() time.Time
	mu      sync.Mutex
	budgets map[budgetKey]*budget
}

// NewHandler wraps next. An interval <= 0 means DefaultInterval.
func NewHandler(next slog.Handler, interval time.Duration) *Handler {
	return newHandler(next, interval, time.Now)
}

func newHandler(next slog.Handler, interval time.Duration, now func() time.Time) *Handler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Handler{next: next, interval: interval, state: &state{now: now, budgets: make(map[budgetKey]*budget)}}
}

// Enabled reports what the wrapped handler reports.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs bounds attrs and passes them on.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if _, ok := markOf(a); ok {
			continue
		}
		b, _ := bound(a)
		out = append(out, b)
	}
	return &Handler{next: h.next.WithAttrs(out), interval: h.interval, state: h.state}
}

// WithGroup passes the group on.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), interval: h.interval, state: h.state}
}

// Handle drops a marked line whose budget is spent, adds to the next one
// that gets through how many were dropped, and bounds every value. A line
// with no mark and nothing to cut is passed on as it is.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	plain := len(r.Message) <= MaxValue
	r.Attrs(func(a slog.Attr) bool {
		if _, ok := markOf(a); ok {
			plain = false
		} else if _, cut := bound(a); cut {
			plain = false
		}
		return plain
	})
	if plain {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, Truncate(r.Message), r.PC)
	marked, key := false, ""
	r.Attrs(func(a slog.Attr) bool {
		if m, ok := markOf(a); ok {
			marked, key = true, m.key
			return true
		}
		b, _ := bound(a)
		out.AddAttrs(b)
		return true
	})
	if marked {
		suppressed, ok := h.state.take(budgetKey{msg: r.Message, key: key}, h.interval)
		if !ok {
			return nil
		}
		if suppressed > 0 {
			out.AddAttrs(slog.Int(SuppressedKey, suppressed))
		}
	}
	return h.next.Handle(ctx, out)
}

// markOf returns a's mark if it is one. Only a KindAny value is asked for
// its Any, which would box any other kind.
func markOf(a slog.Attr) (mark, bool) {
	if a.Value.Kind() != slog.KindAny {
		return mark{}, false
	}
	m, ok := a.Value.Any().(mark)
	return m, ok
}

// take spends the budget of k: ok says whether a line may go out now, and
// suppressed how many were held back since the last one that did.
func (s *state) take(k budgetKey, interval time.Duration) (suppressed int, ok bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.budgets[k]
	if b == nil {
		if len(s.budgets) >= maxKeys {
			s.sweep(now)
		}
		if len(s.budgets) >= maxKeys {
			k.key = "…"
			b = s.budgets[k]
		}
		if b == nil {
			b = &budget{}
			s.budgets[k] = b
		}
	}
	if now.Before(b.until) {
		b.suppressed++
		return 0, false
	}
	suppressed, b.suppressed, b.until = b.suppressed, 0, now.Add(interval)
	return suppressed, true
}

// sweep forgets the budgets whose interval ended with nothing held back:
// they are as good as new. Called with s.mu held.
func (s *state) sweep(now time.Time) {
	for k, b := range s.budgets {
		if b.suppressed == 0 && !now.Before(b.until) {
			delete(s.budgets, k)
		}
	}
}

// bound cuts a's value to MaxValue bytes, and says whether it had to:
// strings, errors, byte slices and anything else that is not a number, a
// bool, a time or a group are quoted as their text when too long. Groups are
// bounded member by member.
func bound(a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if len(v.String()) > MaxValue {
			return slog.String(a.Key, Truncate(v.String())), true
		}
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		cut := false
		for i, m := range g {
			b, c := bound(m)
			out[i], cut = b, cut || c
		}
		if cut {
			return slog.Group(a.Key, out...), true
		}
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			s = fmt.Sprint(x)
		}
		if len(s) > MaxValue {
			return slog.String(a.Key, Truncate(s)), true
		}
	}
	return slog.Attr{Key: a.Key, Value: v}, v.Kind() != a.Value.Kind()
}

// Truncate cuts s to MaxValue bytes, on a rune boundary, and says how long
// it was.
func Truncate(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	cut := MaxValue
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not in the middle of a rune
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}
