package command

import (
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			b.WriteString(strings.Repeat("x", 9) + "\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "nothing", want: ""},
		{name: "white space", writes: []string{" \n\t\n"}, want: ""},
		{name: "a few lines", writes: []string{"one\n", "two", "\nthree\n\n"}, want: "one\ntwo\nthree"},
		{name: "ten lines", writes: []string{lines(1, 10)}, want: strings.TrimSpace(lines(1, 10))},
		{name: "eleven lines", writes: []string{"first\n", lines(2, 11)}, want: "…" + strings.TrimSpace(lines(2, 11))},
		{name: "a long line", writes: []string{strings.Repeat("y", 3000), strings.Repeat("z", 3000)},
			want: "…" + strings.Repeat("y", 4096-3000) + strings.Repeat("z", 3000)},
		{name: "one huge write", writes: []string{"start" + strings.Repeat("z", 10000)}, want: "…" + strings.Repeat("z", 4096)},
		{name: "a character cut in two", writes: []string{"é" + strings.Repeat("z", 4095)}, want: "…" + strings.Repeat("z", 4095)},
		{name: "not utf-8", writes: []string{"a\xffb"}, want: "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tl tail
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tc.want {
				t.Fatalf("tail %.80q…, want %.80q…", got, tc.want)
			}
		})
	}

	// Many small writes keep it bounded.
	var tl tail
	for range 100000 {
		_, _ = tl.Write([]byte("0123456789abcdef\n"))
	}
	if len(tl.buf) > 2*tailBytes {
		t.Fatalf("tail holds %d bytes", len(tl.buf))
	}
	if got := tl.String(); got != "…"+strings.TrimSpace(strings.Repeat("0123456789abcdef\n", 10)) {
		t.Fatalf("tail of many writes: %q", got)
	}
}
