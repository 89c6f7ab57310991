package message

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxBatch bounds the submissions of one batch: a JSON array of
// submissions sent on a submit subject, as one request. The master decides
// each one as it would alone, records the new durable ones together (in as
// few etcd txns as fit), and answers once, with a JSON array of
// SubmitReply in the same order. The whole message is bounded by MaxSize,
// as every message.
const MaxBatch = 1000

// IsBatch reports whether a body on a submit subject is a batch: its
// first character that is not white space is '['.
func IsBatch(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '['
}

// DecodeSubmitBatch parses a batch. An error refuses the whole batch (not
// an array, empty, more than MaxBatch, a uuid given twice); a submission
// that does not decode is refused alone: errs[i] says why subs[i] is not
// one, as DecodeSubmit would.
func DecodeSubmitBatch(data []byte) (subs []Submit, errs []error, err error) {
	var raws []json.RawMessage
	if err := unmarshal(data, &raws); err != nil {
		return nil, nil, fmt.Errorf("%w: a batch is a JSON array of submissions", err)
	}
	switch {
	case len(raws) == 0:
		return nil, nil, fmt.Errorf("%w: an empty batch", ErrInvalid)
	case len(raws) > MaxBatch:
		return nil, nil, fmt.Errorf("%w: a batch of %d submissions, limit %d", ErrInvalid, len(raws), MaxBatch)
	}
	subs, errs = make([]Submit, len(raws)), make([]error, len(raws))
	seen := make(map[string]int, len(raws))
	for i, raw := range raws {
		subs[i], errs[i] = DecodeSubmit(raw)
		if id := subs[i].UUID; errs[i] == nil && id != "" {
			if j, ok := seen[id]; ok {
				return nil, nil, fmt.Errorf("%w: uuid %s is given twice in the batch (submissions %d and %d)", ErrInvalid, id, j, i)
			}
			seen[id] = i
		}
	}
	return subs, errs, nil
}

// SplitBatch cuts items into batches of at most MaxBatch items and, but
// for a single item larger than that, about maxBytes, size(item) being an
// item's bytes as it travels.
func SplitBatch[T any](items []T, size func(T) int, maxBytes int) [][]T {
	var out [][]T
	start, bytes := 0, 0
	for i, item := range items {
		n := size(item)
		if i > start && (i-start == MaxBatch || bytes+n > maxBytes) {
			out = append(out, items[start:i])
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

// AppendSubmitBatch appends subs as a batch.
func AppendSubmitBatch(b []byte, subs []Submit) []byte { return appendArray(b, subs) }

// appendArray appends items as a JSON array.
func appendArray[T interface{ AppendJSON([]byte) []byte }](b []byte, items []T) []byte {
	b = append(b, '[')
	for i, item := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = item.AppendJSON(b)
	}
	return append(b, ']')
}

// SubmitReplies is the master's answer to a batch: one SubmitReply per
// submission, in its order.
type SubmitReplies []SubmitReply

// AppendJSON appends the answers as a JSON array.
func (rs SubmitReplies) AppendJSON(b []byte) []byte { return appendArray(b, rs) }

// DecodeSubmitReplies parses the answer to a batch of n submissions. A
// master refuses a whole batch with one SubmitReply (an object, not an
// array): it is returned as whole, with replies nil.
func DecodeSubmitReplies(data []byte, n int) (replies []SubmitReply, whole SubmitReply, err error) {
	if !IsBatch(data) {
		whole, err = DecodeSubmitReply(data)
		if err == nil && whole.Accepted {
			err = fmt.Errorf("%w: a batch answered with one acceptance", ErrInvalid)
		}
		return nil, whole, err
	}
	if err := unmarshal(data, &replies); err != nil {
		return nil, whole, err
	}
	if len(replies) != n {
		return nil, whole, fmt.Errorf("%w: %d answers to a batch of %d", ErrInvalid, len(replies), n)
	}
	for i, r := range replies {
		if err := r.Validate(); err != nil {
			return nil, whole, fmt.Errorf("answer %d: %w", i, err)
		}
	}
	return replies, whole, nil
}

// A batch of tasks is what the master sends a worker on tasks.<executor>
// in one request: a JSON array of tasks (at most MaxBatch, the message at
// most MaxSize). The worker decides each one as it would alone and
// answers with a JSON array of acks, one per task in its order (Acks).
// A worker of an earlier release refuses the whole batch with one ack,
// and the master then sends the tasks one by one.

// AppendTaskBatch appends tasks as a batch.
func AppendTaskBatch(b []byte, tasks []Task) []byte { return appendArray(b, tasks) }

// DecodeTaskBatch splits a batch of tasks into the tasks' bodies, each
// for DecodeTask.
func DecodeTaskBatch(data []byte) ([]json.RawMessage, error) {
	var raws []json.RawMessage
	if err := unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("%w: a batch of tasks is a JSON array of tasks", err)
	}
	if len(raws) == 0 || len(raws) > MaxBatch {
		return nil, fmt.Errorf("%w: a batch of %d tasks: want 1 to %d", ErrInvalid, len(raws), MaxBatch)
	}
	return raws, nil
}

// Acks is a worker's answer to a batch of tasks.
type Acks []Ack

// AppendJSON appends the acks as a JSON array.
func (as Acks) AppendJSON(b []byte) []byte { return appendArray(b, as) }

// DecodeAcks parses the answer to a batch of n tasks: n acks. A single
// ack (a refusal of the whole batch) is an error that says its reason.
func DecodeAcks(data []byte, n int) ([]Ack, error) {
	if !IsBatch(data) {
		a, err := DecodeAck(data)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the batch was answered with one ack: %s", ErrInvalid, a.Reason)
	}
	var acks []Ack
	if err := unmarshalMax(data, &acks, maxSmall*max(n, 1)); err != nil {
		return nil, err
	}
	if len(acks) != n {
		return nil, fmt.Errorf("%w: %d acks to a batch of %d tasks", ErrInvalid, len(acks), n)
	}
	for i, a := range acks {
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("ack %d: %w", i, err)
		}
	}
	return acks, nil
}
