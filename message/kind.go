package message

import (
	"errors"
	"fmt"
)

// MaxKindLen bounds a task kind's name.
const MaxKindLen = 64

// KindTriple is the built-in demo kind, the article's job: its payload is a
// number and its result the number times three (Work). A submission with a
// number and no kind is a task of this kind.
const KindTriple = "triple"

// ValidKind checks a task kind's name: 1 to MaxKindLen of letters, digits,
// '-' and '_', so that it can also stand in a subject token or an etcd key.
func ValidKind(s string) error {
	if s == "" {
		return errors.New("kind is empty")
	}
	if len(s) > MaxKindLen {
		return fmt.Errorf("kind %q is %d bytes, limit %d", truncate(s), len(s), MaxKindLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("kind %q has a character other than a letter, digit, '-' or '_' at byte %d", truncate(s), i)
		}
	}
	return nil
}
