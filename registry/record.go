package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Record is what a node publishes about itself under <prefix>/nodes/<id>.
type Record struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	IP         string    `json:"ip"`
	ClientURL  string    `json:"client_url"`
	ClusterURL string    `json:"cluster_url"`
	HTTPURL    string    `json:"http_url"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
}

var (
	// ErrInvalidRecord is matched (errors.Is) by every error Record.Validate returns.
	ErrInvalidRecord = errors.New("registry: invalid record")
	// ErrBadRecord is matched (errors.Is) by every error DecodeRecord returns.
	ErrBadRecord = errors.New("registry: bad record")
)

const (
	maxNameLen = 40
	maxIDLen   = 64
)

// Validate checks that the record can be published and used by the others:
// the ID is a single NATS subject token (and a single etcd key segment), the
// IP parses and the three URLs are set.
func (r Record) Validate() error {
	if p := r.problem(); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, p)
	}
	return nil
}

// problem describes the first thing wrong with r, or returns "".
func (r Record) problem() string {
	switch {
	case !validID(r.ID):
		return fmt.Sprintf("id %q is not a NATS subject token (1-%d of a-z A-Z 0-9 _ -)", r.ID, maxIDLen)
	case r.IP == "":
		return "ip is empty"
	case !parsesAsIP(r.IP):
		return fmt.Sprintf("ip %q does not parse", r.IP)
	case r.ClientURL == "":
		return "client_url is empty"
	case r.ClusterURL == "":
		return "cluster_url is empty"
	case r.HTTPURL == "":
		return "http_url is empty"
	}
	return ""
}

func parsesAsIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// validID accepts what SanitizeName and NewID produce, plus upper case: no
// '.', '*', '>' or white space (NATS), no '/' (etcd key segment).
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !isTokenChar(c) && !('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isTokenChar(c rune) bool {
	return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '_' || c == '-'
}

// SanitizeName turns a host name into something usable as one NATS subject
// token: lower case, [a-z0-9_-] kept, anything else (dots, spaces, '*', '>',
// unicode) becomes '-', runs of '-' collapsed, '-' trimmed from both ends, at
// most 40 characters. An empty result becomes "node".
func SanitizeName(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if !isTokenChar(c) {
			c = '-'
		}
		if c == '-' {
			if dash {
				continue
			}
			dash = true
		} else {
			dash = false
		}
		b.WriteRune(c)
		if b.Len() > maxNameLen {
			break
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > maxNameLen {
		s = strings.TrimRight(s[:maxNameLen], "-")
	}
	if s == "" {
		return "node"
	}
	return s
}

// NewID returns a node ID that is readable and unique per call:
// SanitizeName(name) + "-" + the first 8 hex digits of a random UUID.
func NewID(name string) string {
	return SanitizeName(name) + "-" + uuid.NewString()[:8]
}

// NodesPrefix is the etcd prefix under which every node's record lives. prefix
// is the meshpool prefix, like "/meshpool", without a trailing slash.
func NodesPrefix(prefix string) string { return prefix + "/nodes/" }

// Key is the etcd key of the record of node id.
func Key(prefix, id string) string { return NodesPrefix(prefix) + id }

// DecodeRecord parses the value stored at key and checks it: the record must
// be valid and its ID must be the last segment of key.
func DecodeRecord(key string, value []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return Record{}, fmt.Errorf("%w at %s: %w", ErrBadRecord, key, err)
	}
	if p := r.problem(); p != "" {
		return Record{}, fmt.Errorf("%w at %s: %s", ErrBadRecord, key, p)
	}
	if !strings.HasSuffix(key, "/"+r.ID) {
		return Record{}, fmt.Errorf("%w at %s: id %q does not match the key", ErrBadRecord, key, r.ID)
	}
	return r, nil
}

// encode is the inverse of DecodeRecord.
func (r Record) encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("registry: cannot encode record: %w", err)
	}
	return b, nil
}

// same reports whether r and o carry the same information (time.Time is
// compared with Equal, not ==).
func (r Record) same(o Record) bool {
	return r.ID == o.ID && r.Name == o.Name && r.IP == o.IP &&
		r.ClientURL == o.ClientURL && r.ClusterURL == o.ClusterURL &&
		r.HTTPURL == o.HTTPURL && r.Version == o.Version && r.Started.Equal(o.Started)
}
