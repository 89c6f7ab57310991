package command

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// How much of stderr a tail keeps, and shows.
const (
	tailBytes = 4 << 10
	tailLines = 10
)

// tail is an io.Writer that keeps the end of what is written to it: at
// least its last tailBytes bytes, and at most twice as many.
type tail struct {
	buf     []byte
	dropped bool // bytes before buf's were written and let go
}

// Write keeps p's end.
func (t *tail) Write(p []byte) (int, error) {
	if len(p) >= tailBytes {
		t.dropped = t.dropped || len(t.buf) > 0 || len(p) > tailBytes
		t.buf = append(t.buf[:0], p[len(p)-tailBytes:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*tailBytes {
		t.dropped = true
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

// String returns the last tailLines lines of the last tailBytes bytes,
// trimmed, as valid UTF-8, and starting with "…" when that is not all.
func (t *tail) String() string {
	b, cut := t.buf, t.dropped
	if len(b) > tailBytes {
		b, cut = b[len(b)-tailBytes:], true
	}
	b = bytes.TrimRightFunc(b, isSpace)
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == tailLines {
				b, cut = b[i+1:], true
				break
			}
		}
	}
	if cut {
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:] // the rest of a character cut in two
		}
	}
	b = bytes.TrimLeftFunc(b, isSpace)
	if len(b) == 0 {
		return ""
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if cut {
		s = "…" + s
	}
	return s
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }
