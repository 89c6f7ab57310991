// Package jsonw appends JSON to a byte slice without reflection, for the
// few messages meshpool encodes for every task. Every function writes
// exactly what encoding/json writes for the same value, so the hand-written
// encoders built on it can be checked byte for byte against json.Marshal.
package jsonw

import (
	"encoding/json"
	"strconv"
	"time"
)

// String appends s as a JSON string. Plain printable ASCII is copied;
// anything encoding/json would escape (quotes, backslashes, control
// characters, <, >, &, non-ASCII) goes through encoding/json itself.
func String(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Int appends n.
func Int(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// Bool appends true or false.
func Bool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// Time appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds). A time it refuses (year outside 0-9999, zone offset of a
// day or more) goes through encoding/json, and its error is returned.
func Time(b []byte, t time.Time) ([]byte, error) {
	_, offset := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || offset <= -24*60*60 || offset >= 24*60*60 {
		q, err := json.Marshal(t)
		return append(b, q...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// Layout appends t formatted with layout, as a JSON string. The layout
// must produce no character a JSON string would escape.
func Layout(b []byte, t time.Time, layout string) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, layout)
	return append(b, '"')
}

// Key appends a field name and its colon, preceded by a comma unless it is
// the first field (b ends with '{').
func Key(b []byte, name string) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}
