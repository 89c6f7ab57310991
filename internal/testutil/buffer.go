// Package testutil holds what the tests of several packages share.
package testutil

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer that many goroutines may write at once, such as
// a log handler's or a command's output, for a test to read.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns the non-empty lines written so far that contain every one
// of substrs, without their line ends.
func (b *Buffer) Lines(substrs ...string) []string {
	var out []string
next:
	for line := range strings.Lines(b.String()) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}
