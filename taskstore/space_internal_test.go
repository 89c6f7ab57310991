package taskstore

import (
	"strings"
	"testing"
)

// Full refuses from limit of the quota in use, or from a file half the way
// from limit to the quota whatever is in use (etcd's NOSPACE is on the
// file), and never with a limit of 1.
func TestFull(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		space Space
		limit float64
		want  string
	}{
		{Space{InUse: 70 * mib, Size: 70 * mib, Quota: 100 * mib}, 0.8, ""},
		{Space{InUse: 80 * mib, Size: 80 * mib, Quota: 100 * mib}, 0.8, "80 MiB of its 100 MiB quota in use"},
		{Space{InUse: 20 * mib, Size: 89 * mib, Quota: 100 * mib}, 0.8, ""},
		{Space{InUse: 20 * mib, Size: 90 * mib, Quota: 100 * mib}, 0.8, "file is 90 MiB of its 100 MiB quota"},
		{Space{InUse: 99 * mib, Size: 99 * mib, Quota: 100 * mib}, 1, ""},
		{Space{}, 0.8, ""},
	} {
		a := &Alarms{space: tt.space}
		got := a.Full(tt.limit)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%+v, limit %v: %q, want %q", tt.space, tt.limit, got, tt.want)
		}
	}
}
