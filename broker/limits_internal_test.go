package broker

import "testing"

// The default connection limit leaves half the open files to the rest.
func TestMaxConnectionsFollowsFileLimit(t *testing.T) {
	for _, tt := range []struct {
		files uint64
		ok    bool
		want  int
	}{
		{1 << 20, true, DefaultMaxConnections},
		{2 * DefaultMaxConnections, true, DefaultMaxConnections},
		{1024, true, 512},
		{256, true, 128},
		{1, true, 1},
		{^uint64(0), true, DefaultMaxConnections}, // unlimited
		{0, false, DefaultMaxConnections},         // unknown
	} {
		if got := maxConnections(tt.files, tt.ok); got != tt.want {
			t.Errorf("maxConnections(%d, %t) = %d, want %d", tt.files, tt.ok, got, tt.want)
		}
	}
}
