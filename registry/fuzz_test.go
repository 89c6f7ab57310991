package registry_test

import (
	"testing"

	"github.com/meshpool/meshpool/registry"
)

// FuzzDecodeRecord: a value found under <prefix>/nodes/ is either refused or
// a record that validates and names the key's node. Seeds run in go test.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("/meshpool/nodes/a-1f2e3d4c", []byte(`{"id":"a-1f2e3d4c","name":"a","ip":"127.0.0.2","client_url":"nats://127.0.0.2:4222","cluster_url":"nats-route://127.0.0.2:6222","http_url":"http://127.0.0.2:8222","version":"dev","started":"2026-11-27T04:00:00Z"}`))
	f.Add("/meshpool/nodes/x", []byte(`{"id":"y"}`))
	f.Add("/meshpool/nodes/a.b", []byte(`{"id":"a.b","ip":"::1"}`))
	f.Add("/meshpool/nodes/", []byte(`null`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		r, err := registry.DecodeRecord(key, value)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record does not validate: %v", err)
		}
	})
}
