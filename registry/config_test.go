package registry_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/registry"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     registry.Config
		wantErr string // exact message; "" means valid
	}{
		{"default", registry.DefaultConfig(), ""},
		{"zero means defaults", registry.Config{}, ""},
		{"custom", registry.Config{Prefix: "/x/y", TTL: 3 * time.Second}, ""},
		{"short ttl", registry.Config{TTL: 500 * time.Millisecond}, "registry: invalid config: ttl must be at least 2s, got 500ms"},
		{"negative ttl", registry.Config{TTL: -time.Second}, "registry: invalid config: ttl must be at least 2s, got -1s"},
		{"fractional ttl", registry.Config{TTL: 2500 * time.Millisecond}, "registry: invalid config: ttl must be whole seconds, got 2.5s"},
		{"relative prefix", registry.Config{Prefix: "meshpool"}, `registry: invalid config: prefix must start with '/', got "meshpool"`},
		{"trailing slash", registry.Config{Prefix: "/meshpool/"}, `registry: invalid config: prefix must not end with '/', got "/meshpool/"`},
		{"root", registry.Config{Prefix: "/"}, `registry: invalid config: prefix must not end with '/', got "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %q, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, registry.ErrInvalidConfig) {
				t.Errorf("Validate() = %q, not ErrInvalidConfig", err)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := registry.DefaultConfig()
	if cfg.Prefix != "/meshpool" || cfg.TTL != 10*time.Second {
		t.Errorf("DefaultConfig() = %+v", cfg)
	}
}

func TestNewValidates(t *testing.T) {
	// New does not talk to etcd, so a client of an address nobody serves will do.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	good := testRecord("a-1", "10.0.0.1")

	if _, err := registry.New(cli, good, registry.Config{}); err != nil {
		t.Errorf("New with a valid record and zero config: %s", err)
	}
	if _, err := registry.New(cli, good, registry.Config{TTL: time.Second}); !errors.Is(err, registry.ErrInvalidConfig) {
		t.Errorf("New with TTL 1s = %v, want ErrInvalidConfig", err)
	}
	bad := good
	bad.ID = "a.b"
	if _, err := registry.New(cli, bad, registry.Config{}); !errors.Is(err, registry.ErrInvalidRecord) {
		t.Errorf("New with ID a.b = %v, want ErrInvalidRecord", err)
	}
	if _, err := registry.New(nil, good, registry.Config{}); err == nil || !strings.Contains(err.Error(), "client") {
		t.Errorf("New with a nil client = %v, want an error about the client", err)
	}
}
