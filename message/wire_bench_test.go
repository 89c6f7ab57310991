package message_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meshpool/meshpool/message"
)

// BenchmarkWire measures the messages of one durable demo task as they
// travel: their bytes (the bytes metric) and what encoding and decoding
// one costs. A durable task is a submission and its answer, the task and
// its ack, and its result on results (read by the master and by every
// observer).
func BenchmarkWire(b *testing.B) {
	stamp := message.NewTimestamp(time.Now())
	const uuid = "11111111-2222-4333-8444-555555555555"
	sub := message.Submit{UUID: uuid, Kind: message.KindTriple, Payload: json.RawMessage("42"), Number: 42}
	reply := message.SubmitReply{UUID: uuid, Accepted: true, State: "running", Term: 7}
	task := message.Task{UUID: uuid, Executor: "node-a-1234abcd", Kind: message.KindTriple, Payload: json.RawMessage("42"), Number: 42, Term: 7, Attempt: 1, TimeoutMS: 30000}
	ack := message.Ack{Accepted: true, Term: 7}
	res := message.Result{UUID: uuid, Executor: "node-a-1234abcd", Kind: message.KindTriple, Number: 42, Result: json.RawMessage("126"), Start: stamp, Finish: stamp, Term: 7, Attempt: 1}
	for _, m := range []struct {
		name   string
		encode func([]byte) []byte
		decode func([]byte) error
	}{
		{"submit", sub.AppendJSON, func(b []byte) error { _, err := message.DecodeSubmit(b); return err }},
		{"answer", reply.AppendJSON, func(b []byte) error { _, err := message.DecodeSubmitReply(b); return err }},
		{"task", task.AppendJSON, func(b []byte) error { _, err := message.DecodeTask(b); return err }},
		{"ack", ack.AppendJSON, func(b []byte) error { _, err := message.DecodeAck(b); return err }},
		{"result", res.AppendJSON, func(b []byte) error { _, err := message.DecodeResult(b); return err }},
	} {
		body := m.encode(nil)
		b.Run(m.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.encode(make([]byte, 0, 256))
			}
			b.ReportMetric(float64(len(body)), "bytes")
		})
		b.Run(m.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := m.decode(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(body)), "bytes")
		})
	}
}
