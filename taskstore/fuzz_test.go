package taskstore_test

import (
	"testing"

	"github.com/meshpool/meshpool/taskstore"
)

// FuzzDecode: a value found under <prefix>/tasks/ is either refused or a
// record that validates. Seeds run in go test.
func FuzzDecode(f *testing.F) {
	const id = "0b5f7c3e-8d1a-4c2b-9e6f-1a2b3c4d5e6f"
	f.Add("/meshpool/tasks/"+id, []byte(`{"uuid":"`+id+`","number":1,"executor":"a-1f2e3d4c","term":3,"state":"pending","submitted":"2026-11-27T04:00:00Z","attempts":1}`))
	f.Add("/meshpool/tasks/"+id, []byte(`{"uuid":"`+id+`","number":1,"term":3,"state":"done","submitted":"2026-11-27T04:00:00Z","result":{"uuid":"`+id+`"}}`))
	f.Add("/meshpool/tasks/x", []byte(`{"state":"weird"}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		r, err := taskstore.Decode(key, value)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record does not validate: %v", err)
		}
	})
}
