package message_test

import (
	"testing"

	"github.com/meshpool/meshpool/message"
)

// BenchmarkDecodeSubmit measures what the master pays per submission.
func BenchmarkDecodeSubmit(b *testing.B) {
	bodies := map[string][]byte{
		"number":      []byte(`{"number":42}`),
		"uuid+number": []byte(`{"uuid":"` + id + `","number":42,"durability":"durable"}`),
	}
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := message.DecodeSubmit(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
