// Package secret reads secrets from files and keeps them out of text that
// is logged or served: passwords are never flag values (they would show in
// ps), and any text that might echo one can be passed through a Redactor.
package secret

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// ReadFile reads a secret from file: its content without trailing white
// space (an editor's final newline). An empty secret is an error, and so is
// a file others may read or anyone but its owner may write (mode beyond
// 0640: chmod 600 it, or 640 for a group that must read it). An error
// names an existing file, never the content, and not a path that could not
// be opened: that may be the secret itself, given where its file belongs.
func ReadFile(what, file string) (string, error) {
	f, err := open(what, file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "", fmt.Errorf("cannot read the %s file %s: %w", what, file, err)
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

// Check checks a secret file as ReadFile does, for a secret another
// library reads (an nkey seed): it exists, and its mode is at most 0640.
func Check(what, file string) error {
	f, err := open(what, file)
	if err != nil {
		return err
	}
	return f.Close()
}

// open opens a secret file, checking its mode; see ReadFile.
func open(what, file string) (*os.File, error) {
	f, err := os.Open(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without the path
		}
		return nil, fmt.Errorf("cannot read the %s file (the path given is not repeated: it may be the secret itself, given where its file belongs): %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot read the %s file %s: %w", what, file, err)
	}
	if perm := st.Mode().Perm(); perm&0o037 != 0 {
		f.Close()
		return nil, fmt.Errorf("the %s file %s has mode %04o: others may read it or more than its owner write it; chmod 600 it (or 640 for a group that must read it)", what, file, perm)
	}
	return f, nil
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
