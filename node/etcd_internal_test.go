package node

import (
	"strings"
	"testing"
)

// A node that relies on etcd's authentication is told when its etcd skips
// permission checks under the NOSPACE alarm (3.4, 3.5).
func TestEtcdVersionProblem(t *testing.T) {
	for _, tt := range []struct {
		version string
		auth    bool
		warn    bool
	}{
		{"3.4.23", true, true}, {"3.5.17", true, true}, {"3.6.0", true, false}, {"3.7.3", true, false},
		{"4.0.0", true, false}, {"3.4.23", false, false}, {"", true, false}, {"garbage", true, false},
	} {
		got := etcdVersionProblem(tt.version, tt.auth)
		if (got != "") != tt.warn || tt.warn && !strings.Contains(got, "NOSPACE") {
			t.Errorf("etcd %q, auth %v: %q; want a warning %v", tt.version, tt.auth, got, tt.warn)
		}
	}
}
