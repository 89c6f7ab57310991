package message

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// field is one top-level key a strict message may carry.
type field struct {
	name string
	// required: the key must be present and not null.
	required bool
}

// fieldsIn returns the fields an object names, bit i for fields[i] (a
// field given as null counts as absent), and refuses an object that names
// a key not in fields, names one twice, or lacks a required one:
// encoding/json alone would take {}, null or {"numbr":7} as zero values.
// Keys match exactly, as they are written. data must be JSON that
// json.Unmarshal has accepted; the walk is one pass over the bytes and
// allocates nothing for keys without escapes. At most 64 fields.
func fieldsIn(data []byte, fields []field) (seen uint64, err error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return 0, fmt.Errorf("%w: want a JSON object", ErrMalformed)
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] != '}' {
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		end := skipString(data, i)
		key, err := objectKey(data[i:end])
		if err != nil {
			return 0, err
		}
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ':' {
			i = skipSpace(data, i+1)
		}
		null := len(data)-i >= 4 && string(data[i:i+4]) == "null"
		i = skipSpace(data, skipValue(data, i))

		f := -1
		for j := range fields {
			if fields[j].name == string(key) {
				f = j
				break
			}
		}
		switch {
		case f < 0:
			return 0, fmt.Errorf("%w: unknown field %q", ErrInvalid, truncate(string(key)))
		case seen&(1<<f) != 0:
			return 0, fmt.Errorf("%w: field %q given twice", ErrInvalid, key)
		case null && fields[f].required:
			return 0, fmt.Errorf("%w: field %q is required, got null", ErrInvalid, key)
		}
		if !null { // null is as absent, for a field that is not required
			seen |= 1 << f
		}
	}
	for j, f := range fields {
		if f.required && seen&(1<<j) == 0 {
			return 0, fmt.Errorf("%w: field %q is required", ErrInvalid, f.name)
		}
	}
	return seen, nil
}

// objectKey returns the key a quoted JSON string spells; only a key with
// escapes costs an allocation.
func objectKey(quoted []byte) ([]byte, error) {
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return nil, fmt.Errorf("%w: want an object key", ErrMalformed)
	}
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, fmt.Errorf("%w: object key: %w", ErrMalformed, err)
	}
	return []byte(s), nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at i.
func skipString(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return i
	}
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value that starts at i.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; {
		case c == '"':
			i = skipString(data, i)
		case c == '{' || c == '[':
			depth++
			i++
		case c == '}' || c == ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
			if depth == 0 {
				return i
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i
		default:
			i++
		}
	}
	return i
}
