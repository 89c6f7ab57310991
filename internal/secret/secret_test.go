package secret_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshpool/meshpool/internal/secret"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, want, err string }{
		{"trailing newline", "s3cret\n", "s3cret", ""},
		{"CRLF", "s3cret\r\n", "s3cret", ""},
		{"empty", "\n", "", "is empty"},
		{"two lines", "a\nb\n", "", "more than one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, "f")
			if err := os.WriteFile(f, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := secret.ReadFile("test secret", f)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "a\nb") {
					t.Fatalf("error %v, want %q without the content", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := secret.ReadFile("test secret", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "test secret file") {
		t.Fatalf("missing file: %v", err)
	}
	// A secret given where its file's path belongs is not echoed.
	if _, err := secret.ReadFile("test secret", "hunter2-s3cret"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a secret given as the path: %v; want an error that does not repeat it", err)
	}
	// Only its owner may write it, and others may not read it.
	f := filepath.Join(dir, "modes")
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, true}, {0o644, false}, {0o660, false}, {0o604, false}, {0o666, false}} {
		if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := secret.ReadFile("test secret", f)
		if (err == nil) != tt.ok || err != nil && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v; want ok %v", tt.mode, err, tt.ok)
		}
	}
}

func TestRedactor(t *testing.T) {
	const pw = "p@ss/wörd:1"
	r := secret.NewRedactor(pw, "")
	u := url.URL{Scheme: "nats-route", Host: "10.0.0.1:6222", User: url.UserPassword("route", pw)}
	for _, s := range []string{"plain " + pw + " text", "Removed route " + u.String()} {
		got := r.Redact(s)
		if strings.Contains(got, pw) || strings.Contains(got, strings.TrimPrefix(url.UserPassword("", pw).String(), ":")) || !strings.Contains(got, secret.Redacted) {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
	if got := (secret.Redactor{}).Redact("x"); got != "x" {
		t.Errorf("the zero Redactor changed %q", got)
	}
}
