package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/registry"
)

// token is what a single NATS subject token made by SanitizeName may hold.
var token = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$`)

func TestSanitizeName(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "worker1", "worker1"},
		{"upper case", "Worker-A", "worker-a"},
		{"dotted host name", "node-a.example.com", "node-a-example-com"},
		{"wildcards", "a*b>c", "a-b-c"},
		{"only wildcards", "*>", "node"},
		{"spaces", "my laptop  2", "my-laptop-2"},
		{"unicode", "hôte-numéro-ünf", "h-te-num-ro-nf"},
		{"emoji only", "🚀🚀", "node"},
		{"underscore kept", "db_1", "db_1"},
		{"runs of dashes collapsed", "a---b..c", "a-b-c"},
		{"trimmed", "..-a-..", "a"},
		{"empty", "", "node"},
		{"tab and newline", "a\tb\nc", "a-b-c"},
		{"slash", "rack/1", "rack-1"},
		{"very long", strings.Repeat("abcdefghij", 10), strings.Repeat("abcdefghij", 4)},
		{"cut at a dash", strings.Repeat("a", 39) + ".bbbb", strings.Repeat("a", 39)},
		{"long prefix of junk", strings.Repeat(".", 100) + "x", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := registry.SanitizeName(tt.in)
			if got != tt.want {
				t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if len(got) > 40 || !token.MatchString(got) {
				t.Errorf("SanitizeName(%q) = %q is not a token of at most 40 characters", tt.in, got)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	shape := regexp.MustCompile(`^(.+)-([0-9a-f]{8})$`)
	for _, name := range []string{"worker1", "node-a.example.com", "*>", "", strings.Repeat("x", 300), "hôte"} {
		t.Run(name, func(t *testing.T) {
			id := registry.NewID(name)
			m := shape.FindStringSubmatch(id)
			if m == nil {
				t.Fatalf("NewID(%q) = %q, want <name>-<8 hex>", name, id)
			}
			if m[1] != registry.SanitizeName(name) {
				t.Errorf("NewID(%q) = %q, want prefix %q", name, id, registry.SanitizeName(name))
			}
			rec := testRecord(id, "10.0.0.1")
			if err := rec.Validate(); err != nil {
				t.Errorf("record with ID %q is invalid: %s", id, err)
			}
		})
	}

	t.Run("unique per call", func(t *testing.T) {
		seen := map[string]bool{}
		for range 1000 {
			id := registry.NewID("host")
			if seen[id] {
				t.Fatalf("NewID returned %q twice", id)
			}
			seen[id] = true
		}
	})
}

func TestRecordValidate(t *testing.T) {
	valid := testRecord("node-a-1234abcd", "10.0.0.1")
	tests := []struct {
		name    string
		change  func(*registry.Record)
		wantErr string // "" means valid
	}{
		{"valid", func(*registry.Record) {}, ""},
		{"ipv6", func(r *registry.Record) { r.IP = "fd00::1" }, ""},
		{"upper case id", func(r *registry.Record) { r.ID = "Node-A" }, ""},
		{"empty id", func(r *registry.Record) { r.ID = "" }, `id ""`},
		{"dot in id", func(r *registry.Record) { r.ID = "a.b" }, `id "a.b"`},
		{"star in id", func(r *registry.Record) { r.ID = "a*" }, `id "a*"`},
		{"gt in id", func(r *registry.Record) { r.ID = "a>" }, `id "a>"`},
		{"space in id", func(r *registry.Record) { r.ID = "a b" }, `id "a b"`},
		{"slash in id", func(r *registry.Record) { r.ID = "a/b" }, `id "a/b"`},
		{"unicode in id", func(r *registry.Record) { r.ID = "hôte" }, `id "hôte"`},
		{"id too long", func(r *registry.Record) { r.ID = strings.Repeat("a", 65) }, "id"},
		{"empty ip", func(r *registry.Record) { r.IP = "" }, "ip is empty"},
		{"bad ip", func(r *registry.Record) { r.IP = "10.0.0" }, `ip "10.0.0" does not parse`},
		{"host name as ip", func(r *registry.Record) { r.IP = "localhost" }, `ip "localhost"`},
		{"no client url", func(r *registry.Record) { r.ClientURL = "" }, "client_url is empty"},
		{"no cluster url", func(r *registry.Record) { r.ClusterURL = "" }, "cluster_url is empty"},
		{"no http url", func(r *registry.Record) { r.HTTPURL = "" }, "http_url is empty"},
		{"nats-route cluster url", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1:6222" }, ""},
		{"cluster url with slash", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1:6222/" }, ""},
		{"ipv6 cluster url", func(r *registry.Record) { r.ClusterURL = "nats-route://[fd00::1]:6222" }, ""},
		{"tls client url", func(r *registry.Record) { r.ClientURL = "tls://10.0.0.1:4222" }, ""},
		{"https url", func(r *registry.Record) { r.HTTPURL = "https://10.0.0.1:8222" }, ""},
		{"cluster name", func(r *registry.Record) { r.Cluster = "meshpool" }, ""},
		{"cluster url does not parse", func(r *registry.Record) { r.ClusterURL = "nats-route://bad host:6222" }, `cluster_url "nats-route://bad host:6222": does not parse`},
		{"cluster url without port", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1" }, "cluster_url"},
		{"cluster url port 0", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1:0" }, "port in 1..65535"},
		{"cluster url port too big", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1:65536" }, "port in 1..65535"},
		{"cluster url no scheme", func(r *registry.Record) { r.ClusterURL = "10.0.0.1:6222" }, "cluster_url"},
		{"cluster url http", func(r *registry.Record) { r.ClusterURL = "http://10.0.0.1:6222" }, "scheme is not nats-route or nats"},
		{"cluster url with user", func(r *registry.Record) { r.ClusterURL = "nats-route://u:p@10.0.0.1:6222" }, "host:port only"},
		{"cluster url with path", func(r *registry.Record) { r.ClusterURL = "nats-route://10.0.0.1:6222/x" }, "host:port only"},
		{"cluster url opaque", func(r *registry.Record) { r.ClusterURL = "nats-route:10.0.0.1:6222" }, "host:port only"},
		{"cluster url zone", func(r *registry.Record) { r.ClusterURL = "nats-route://[fe80::1%25eth0]:6222" }, "host does not parse"},
		{"client url http", func(r *registry.Record) { r.ClientURL = "http://10.0.0.1:4222" }, "client_url"},
		{"client url no port", func(r *registry.Record) { r.ClientURL = "nats://10.0.0.1" }, "client_url"},
		{"http url nats", func(r *registry.Record) { r.HTTPURL = "nats://10.0.0.1:8222" }, "http_url"},
		{"http url with path", func(r *registry.Record) { r.HTTPURL = "http://10.0.0.1:8222/status" }, "http_url"},
		{"name too long", func(r *registry.Record) { r.Name = strings.Repeat("n", 257) }, "name"},
		{"version too long", func(r *registry.Record) { r.Version = strings.Repeat("v", 257) }, "version"},
		{"cluster too long", func(r *registry.Record) { r.Cluster = strings.Repeat("c", 257) }, "cluster"},
		{"cluster with dot", func(r *registry.Record) { r.Cluster = "a.b" }, `cluster "a.b" is not a single word`},
		{"url too long", func(r *registry.Record) { r.HTTPURL = "http://" + strings.Repeat("h", 300) + ":1" }, "http_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := valid
			tt.change(&rec)
			err := rec.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %q, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error about %q", tt.wantErr)
			}
			if !errors.Is(err, registry.ErrInvalidRecord) {
				t.Errorf("Validate() = %q, not ErrInvalidRecord", err)
			}
			if !strings.HasPrefix(err.Error(), "registry: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to start with \"registry: \" and mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeRecord(t *testing.T) {
	rec := testRecord("node-a-1234abcd", "10.0.0.1")
	good, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	key := keyspace.Node("/meshpool", rec.ID)
	badIP := testRecord("node-a-1234abcd", "not-an-ip")
	badIPJSON, _ := json.Marshal(badIP)

	tests := []struct {
		name    string
		key     string
		value   string
		wantErr string // "" means it decodes to rec
	}{
		{"valid", key, string(good), ""},
		{"unknown fields are ignored", key, strings.Replace(string(good), "{", `{"extra":1,`, 1), ""},
		{"not json", key, "hello", "invalid character"},
		{"empty", key, "", "unexpected end of JSON input"},
		{"wrong type", key, `{"id":42}`, "cannot unmarshal number"},
		{"bad time", key, strings.Replace(string(good), "2025-03-01", "2025-13-01", 1), "month out of range"},
		{"invalid record", key, string(badIPJSON), `ip "not-an-ip" does not parse`},
		{"id does not match key", keyspace.Node("/meshpool", "someone-else"), string(good), `id "node-a-1234abcd" does not match the key`},
		{"too big", key, strings.Replace(string(good), "{", `{"pad":"`+strings.Repeat("x", registry.MaxRecordSize)+`",`, 1), "more than 16384"},
		{"bad cluster url", key, strings.Replace(string(good), rec.ClusterURL, "nats-route://%zz:1", 1), "cluster_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.DecodeRecord(tt.key, []byte(tt.value))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeRecord() error %q", err)
				}
				if got.ID != rec.ID || got.IP != rec.IP || got.ClientURL != rec.ClientURL ||
					got.ClusterURL != rec.ClusterURL || got.HTTPURL != rec.HTTPURL ||
					got.Name != rec.Name || got.Version != rec.Version || !got.Started.Equal(rec.Started) {
					t.Fatalf("DecodeRecord() = %+v, want %+v", got, rec)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeRecord() = %+v, want an error", got)
			}
			if !errors.Is(err, registry.ErrBadRecord) {
				t.Errorf("error %q is not ErrBadRecord", err)
			}
			prefix := "registry: bad record at " + tt.key + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to start with %q and mention %q", err, prefix, tt.wantErr)
			}
		})
	}
}

func TestRecordJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(testRecord("a", "10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "name", "ip", "client_url", "cluster_url", "http_url", "version", "started", "cluster"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("JSON %s has no field %q", b, f)
		}
	}
	if len(fields) != 9 {
		t.Errorf("JSON %s has %d fields, want 9", b, len(fields))
	}
}

// An error about a huge field quotes at most 200 bytes of it.
func TestRecordErrorsAreShort(t *testing.T) {
	huge := strings.Repeat("x", 100_000)
	for _, change := range []func(*registry.Record){
		func(r *registry.Record) { r.ID = huge },
		func(r *registry.Record) { r.IP = huge },
		func(r *registry.Record) { r.ClusterURL = "nats-route://" + huge },
		func(r *registry.Record) { r.Name = huge },
	} {
		rec := testRecord("a", "10.0.0.1")
		change(&rec)
		err := rec.Validate()
		if err == nil || len(err.Error()) > 400 {
			t.Errorf("Validate() = %d bytes of error, want an error of at most 400: %.500s", len(fmt.Sprint(err)), err)
		}
	}
	key := "/meshpool/nodes/" + huge
	if _, err := registry.DecodeRecord(key, []byte(`{"id":"`+huge+`"}`)); err == nil || len(err.Error()) > 400 {
		t.Errorf("DecodeRecord() = %d bytes of error, want an error of at most 400", len(fmt.Sprint(err)))
	}
}
