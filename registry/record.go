package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meshpool/meshpool/message"
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
	// Cluster is the node's --cluster-name. Records written before the
	// field existed have "": they are taken as of the reader's cluster.
	Cluster string `json:"cluster"`
	// Kinds are the task kinds the node runs as a worker, sorted, and
	// Slots how many tasks it runs at once. A record written before kinds
	// has neither: see Handles and Capacity.
	Kinds []string `json:"kinds,omitempty"`
	Slots int      `json:"slots,omitempty"`
}

// MaxKinds bounds the kinds one node registers.
const MaxKinds = 128

// Handles reports whether the node runs tasks of kind. A node that
// registered no kinds (written before kinds) runs the demo kind alone.
func (r Record) Handles(kind string) bool {
	if r.Kinds == nil {
		return kind == message.KindTriple
	}
	_, found := slices.BinarySearch(r.Kinds, kind)
	return found
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
	// maxTextLen bounds every other string field of a record.
	maxTextLen = 256
	// MaxRecordSize bounds an encoded record: a larger value under
	// <prefix>/nodes/ is refused before it is parsed.
	MaxRecordSize = 16 << 10
)

// Validate checks that the record can be published and used by the others:
// the ID is a single NATS subject token (and a single etcd key segment), the
// IP parses, cluster_url is nats-route://host:port (or nats://host:port),
// client_url nats://host:port (or tls://), http_url http://host:port (or
// https://), the cluster name is one word, and no field is longer than 256
// bytes.
func (r Record) Validate() error {
	if p := r.problem(); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, p)
	}
	return nil
}

// problem describes the first thing wrong with r, or returns "". It quotes
// at most quoteMax bytes of any field.
func (r Record) problem() string {
	switch {
	case !validID(r.ID):
		return fmt.Sprintf("id %s is not a NATS subject token (1-%d of a-z A-Z 0-9 _ -)", quote(r.ID), maxIDLen)
	case r.IP == "":
		return "ip is empty"
	case !parsesAsIP(r.IP):
		return fmt.Sprintf("ip %s does not parse", quote(r.IP))
	}
	urls := []struct {
		field, value string
		schemes      []string
	}{
		{"client_url", r.ClientURL, []string{"nats", "tls"}},
		{"cluster_url", r.ClusterURL, []string{"nats-route", "nats"}},
		{"http_url", r.HTTPURL, []string{"http", "https"}},
	}
	for _, u := range urls {
		if u.value == "" {
			return u.field + " is empty"
		}
		if p := urlProblem(u.value, u.schemes); p != "" {
			return fmt.Sprintf("%s %s: %s", u.field, quote(u.value), p)
		}
	}
	texts := []struct{ field, value string }{{"name", r.Name}, {"version", r.Version}, {"cluster", r.Cluster}}
	for _, f := range texts {
		if len(f.value) > maxTextLen {
			return fmt.Sprintf("%s %s is longer than %d bytes", f.field, quote(f.value), maxTextLen)
		}
	}
	if strings.ContainsAny(r.Cluster, " \t\r\n.*>") {
		return fmt.Sprintf("cluster %s is not a single word", quote(r.Cluster))
	}
	if len(r.Kinds) > MaxKinds {
		return fmt.Sprintf("%d kinds, more than %d", len(r.Kinds), MaxKinds)
	}
	for i, k := range r.Kinds {
		if err := message.ValidKind(k); err != nil {
			return err.Error()
		}
		if i > 0 && r.Kinds[i-1] >= k {
			return "kinds are not sorted and distinct"
		}
	}
	if r.Slots < 0 {
		return fmt.Sprintf("slots %d is negative", r.Slots)
	}
	return ""
}

// urlProblem describes what is wrong with s as scheme://host:port, where
// scheme is one of schemes, or returns "". The host must survive being put
// back into a URL, as the broker does with a cluster URL.
func urlProblem(s string, schemes []string) string {
	if len(s) > maxTextLen {
		return fmt.Sprintf("longer than %d bytes", maxTextLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats all of s; its Err is the reason alone.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return "does not parse: " + clip(err.Error())
	}
	want := strings.Join(schemes, " or ")
	switch {
	case !slices.Contains(schemes, u.Scheme):
		return "scheme is not " + want
	case u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "want " + schemes[0] + "://host:port only"
	}
	host, port := u.Hostname(), u.Port()
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return "want host:port with a port in 1..65535"
	}
	if _, err := url.Parse(u.Scheme + "://" + net.JoinHostPort(host, port) + "/"); err != nil {
		return "host does not parse"
	}
	return ""
}

// quoteMax is how much of a value quote shows.
const quoteMax = 200

// quote returns s quoted, cut to its first quoteMax bytes plus its size when
// longer: what error messages and log lines show of a value they did not make.
func quote(s string) string {
	if len(s) <= quoteMax {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:quoteMax]), len(s))
}

// clip cuts s to its first quoteMax bytes plus its size, unquoted.
func clip(s string) string {
	if len(s) <= quoteMax {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:quoteMax], ""), len(s))
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

// DecodeRecord parses the value stored at key and checks it: the record must
// be valid, at most MaxRecordSize bytes, and its ID must be the last segment
// of key. The error quotes at most 200 bytes of the key and of any field.
func DecodeRecord(key string, value []byte) (Record, error) {
	if len(value) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w at %s: %d bytes, more than %d", ErrBadRecord, clip(key), len(value), MaxRecordSize)
	}
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return Record{}, fmt.Errorf("%w at %s: %w", ErrBadRecord, clip(key), err)
	}
	if p := r.problem(); p != "" {
		return Record{}, fmt.Errorf("%w at %s: %s", ErrBadRecord, clip(key), p)
	}
	if !strings.HasSuffix(key, "/"+r.ID) {
		return Record{}, fmt.Errorf("%w at %s: id %q does not match the key", ErrBadRecord, clip(key), r.ID)
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
		r.HTTPURL == o.HTTPURL && r.Version == o.Version && r.Started.Equal(o.Started) &&
		r.Cluster == o.Cluster && slices.Equal(r.Kinds, o.Kinds) && r.Slots == o.Slots
}
