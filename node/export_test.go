package node

import (
	"testing"
	"time"
)

// ShortenMinCompactionRetention lets a test's master compact after d instead
// of MinCompactionRetention, until the test ends. Tests of this package do
// not run in parallel, so nothing reads the bound while it changes.
func ShortenMinCompactionRetention(t testing.TB, d time.Duration) {
	old := minCompactionRetention
	minCompactionRetention = d
	t.Cleanup(func() { minCompactionRetention = old })
}

// ShortenUnroutedGrace lets a member without a route stop blocking
// /readyz after d instead of unroutedGrace, until the test ends.
func ShortenUnroutedGrace(t testing.TB, d time.Duration) {
	old := unroutedGrace
	unroutedGrace = d
	t.Cleanup(func() { unroutedGrace = old })
}
