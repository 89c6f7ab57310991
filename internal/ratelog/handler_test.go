package ratelog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/ratelog"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logger logs JSON lines into the returned buffer through the handler.
func logger(interval time.Duration) (*slog.Logger, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := ratelog.NewHandlerAt(slog.NewJSONHandler(&buf, nil), interval, c.Now)
	return slog.New(h), &buf, c
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	buf.Reset()
	return out
}

func TestMarkedLinesAreLimitedPerInterval(t *testing.T) {
	log, buf, c := logger(time.Second)
	for range 1000 {
		log.Warn("task refused", ratelog.Limit, "reason", "stale term")
	}
	got := lines(t, buf)
	if len(got) != 1 || got[0]["msg"] != "task refused" || got[0]["reason"] != "stale term" {
		t.Fatalf("1000 lines in one interval gave %v, want the first only", got)
	}
	if _, ok := got[0]["ratelog"]; ok {
		t.Errorf("the mark is logged: %v", got[0])
	}
	if _, ok := got[0][ratelog.SuppressedKey]; ok {
		t.Errorf("first line says something was suppressed: %v", got[0])
	}

	c.Add(time.Second)
	log.Warn("task refused", ratelog.Limit, "reason", "wrong executor")
	log.Warn("task refused", ratelog.Limit, "reason", "wrong executor")
	got = lines(t, buf)
	if len(got) != 1 || got[0][ratelog.SuppressedKey] != float64(999) || got[0]["reason"] != "wrong executor" {
		t.Fatalf("after the interval: %v, want one line with suppressed=999", got)
	}

	c.Add(time.Second)
	log.Warn("task refused", ratelog.Limit)
	if got = lines(t, buf); len(got) != 1 || got[0][ratelog.SuppressedKey] != float64(1) {
		t.Fatalf("third interval: %v, want suppressed=1", got)
	}
}

func TestBudgetsAreSeparate(t *testing.T) {
	log, buf, _ := logger(time.Minute)
	for range 10 {
		log.Warn("a", ratelog.Limit)
		log.Warn("b", ratelog.Limit)
		log.Warn("c", ratelog.Key("peer-1"))
		log.Warn("c", ratelog.Key("peer-2"))
		log.With("component", "x").Error("a", ratelog.Limit) // shares a's budget
		log.Info("unmarked")
	}
	count := map[string]int{}
	for _, l := range lines(t, buf) {
		count[fmt.Sprint(l["msg"])]++
	}
	want := map[string]int{"a": 1, "b": 1, "c": 2, "unmarked": 10}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("lines per message %v, want %v", count, want)
	}
}

func TestManyKeysStayBounded(t *testing.T) {
	log, buf, _ := logger(time.Minute)
	n := 3 * ratelog.MaxKeys
	for i := range n {
		log.Warn("refused", ratelog.Key(fmt.Sprint("sender-", i)))
	}
	// Every key up to the bound has its own line; the rest share one.
	if got := len(lines(t, buf)); got != ratelog.MaxKeys+1 {
		t.Fatalf("%d keys gave %d lines, want %d", n, got, ratelog.MaxKeys+1)
	}
}

func TestValuesAreBounded(t *testing.T) {
	log, buf, _ := logger(time.Minute)
	huge := strings.Repeat("k", 100_000)
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("/meshpool/tasks/%036d", i)
	}
	errs := make([]error, 2000)
	for i := range errs {
		errs[i] = fmt.Errorf("bad record at %s", keys[i])
	}
	log.With("record", huge).Error(huge, "value", huge, "err", errors.Join(errs...), "keys", keys,
		"raw", []byte(huge), slog.Group("g", "inner", huge), "n", 7, "é", strings.Repeat("é", 1000))
	line := buf.String()
	if len(line) > 10*ratelog.MaxValue {
		t.Fatalf("line is %d bytes, want at most %d", len(line), 10*ratelog.MaxValue)
	}
	got := lines(t, bytes.NewBufferString(line))[0]
	if got["n"] != float64(7) {
		t.Errorf("n = %v, want 7 untouched", got["n"])
	}
	if s := fmt.Sprint(got["value"]); !strings.HasSuffix(s, "…(100000 bytes)") {
		t.Errorf("value ends %q, want it to say how long it was", s[max(len(s)-30, 0):])
	}
	if s := fmt.Sprint(got["é"]); !strings.HasPrefix(s, "éé") || strings.ContainsRune(s, '\uFFFD') {
		t.Errorf("cut in the middle of a rune: %q", s[:20])
	}
	small := []string{"a", "b"}
	buf.Reset()
	log.Info("members", "ids", small)
	if got := lines(t, buf)[0]["ids"]; fmt.Sprint(got) != "[a b]" {
		t.Errorf("a small slice became %v, want it kept as a list", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	log, buf, c := logger(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				log.Warn("busy", ratelog.Limit)
			}
		})
	}
	wg.Wait()
	c.Add(time.Second)
	log.Warn("busy", ratelog.Limit)
	got := lines(t, buf)
	if len(got) != 2 || got[1][ratelog.SuppressedKey] != float64(7999) {
		t.Fatalf("8000 lines then one: %v, want 2 lines, the second with suppressed=7999", got)
	}
}

// The per-task lines go through the handler: it must cost little next to
// the handler it wraps.
func BenchmarkHandler(b *testing.B) {
	ts := time.Now()
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"json", slog.NewJSONHandler(io.Discard, nil)},
		{"ratelog+json", ratelog.NewHandler(slog.NewJSONHandler(io.Discard, nil), 0)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			log := slog.New(bc.h).With("node", "n2-0123abcd", "component", "master")
			for b.Loop() {
				log.Info("result", "uuid", "0b5f0b5f-0b5f-4b5f-8b5f-0b5f0b5f0b5f", "executor", "n3-0123abcd",
					"number", 42, "result", 126, "start", ts, "latency", time.Millisecond)
			}
		})
	}
}
