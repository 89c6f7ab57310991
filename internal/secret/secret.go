// Package secret reads secrets from files and keeps them out of text that
// is logged or served: passwords are never flag values (they would show in
// ps), and any text that might echo one can be passed through a Redactor.
package secret

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// ReadFile reads a secret from file: its content without trailing white
// space (an editor's final newline). An empty secret is an error. The error
// names the file, never the content.
func ReadFile(what, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cannot read the %s file: %w", what, err)
	}
	s := strings.TrimRight(string(b), " \t\r\n")
	if s == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, file)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("the %s file %s has more than one line; want the secret alone", what, file)
	}
	return s, nil
}

// Redacted replaces every secret in secrets by it.
const Redacted = "[REDACTED]"

// Redactor replaces known secrets in text. The zero value redacts nothing.
type Redactor struct{ r *strings.Replacer }

// NewRedactor redacts the given secrets (empty ones are ignored), also in
// the URL-escaped forms a URL's user info would hold.
func NewRedactor(secrets ...string) Redactor {
	var pairs []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		pairs = append(pairs, s, Redacted)
		if esc := urlEscape(s); esc != s {
			pairs = append(pairs, esc, Redacted)
		}
	}
	if len(pairs) == 0 {
		return Redactor{}
	}
	return Redactor{r: strings.NewReplacer(pairs...)}
}

// Redact returns s without the secrets.
func (r Redactor) Redact(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// urlEscape escapes s as a password in a URL's user info.
func urlEscape(s string) string {
	return strings.TrimPrefix(url.UserPassword("", s).String(), ":")
}
