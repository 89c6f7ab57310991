package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Work is the demo's work rule, the article's: a triple task's result is
// its number times three. Its workers compute it; the master records a
// triple result only if it is Work of the task's number. ValidNumber bounds
// the number so that it cannot overflow.
func Work(number int64) int64 { return number * 3 }

// TripleResult is the result a triple task of number must have.
func TripleResult(number int64) json.RawMessage {
	return strconv.AppendInt(make([]byte, 0, 20), Work(number), 10)
}

// IsTripleResult reports whether result is TripleResult(number), without
// allocating: the master and clients check every demo result.
func IsTripleResult(number int64, result json.RawMessage) bool {
	var buf [24]byte
	return bytes.Equal(result, strconv.AppendInt(buf[:0], Work(number), 10))
}

// TripleNumber reads a triple task's payload: an integer within ±2^60.
func TripleNumber(payload json.RawMessage) (int64, error) {
	n, ok := parseInt(bytes.TrimSpace(payload))
	if !ok {
		return 0, fmt.Errorf("%w: a %s payload is an integer, got %s", ErrInvalid, KindTriple, truncate(string(payload)))
	}
	return n, ValidNumber(n)
}

// parseInt reads a JSON integer, -?(0|[1-9][0-9]*), of at most 19
// digits, without allocating: it runs for every demo task on the master
// and the worker.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 || b[0] == '0' && len(b) > 1 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 && !(neg && n == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// NormalizeWork normalises a task's (or a record's) kind, payload and number: a task without kind
// and payload (written before kinds) is a triple task of its number, and a
// triple task's number is its payload's. What it cannot make sense of it
// returns as it is, for ValidWork to refuse.
func NormalizeWork(kind string, payload json.RawMessage, number int64) (string, json.RawMessage, int64) {
	switch {
	case kind == "" && (len(payload) == 0 || string(payload) == "null"):
		return KindTriple, strconv.AppendInt(nil, number, 10), number
	case kind == KindTriple && (number == 0 || len(payload) == 0):
		if len(payload) == 0 {
			return kind, strconv.AppendInt(nil, number, 10), number
		}
		if n, err := TripleNumber(payload); err == nil {
			return kind, payload, n
		}
	}
	return kind, payload, number
}

// ValidWork checks a task's (or a record's) kind and payload, and for a triple task that
// its number is its payload.
func ValidWork(kind string, payload json.RawMessage, number int64) error {
	if err := ValidKind(kind); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(payload) == 0 {
		return fmt.Errorf("%w: payload is required", ErrInvalid)
	}
	if kind != KindTriple {
		if number != 0 {
			return fmt.Errorf("%w: number is the payload of kind %s only", ErrInvalid, KindTriple)
		}
		return nil
	}
	n, err := TripleNumber(payload)
	switch {
	case err != nil:
		return err
	case n != number:
		return fmt.Errorf("%w: number %d is not the payload %d", ErrInvalid, number, n)
	}
	return nil
}
