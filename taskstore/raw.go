package taskstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/meshpool/meshpool/internal/keyspace"
)

// ErrInvalidKey is matched (errors.Is) by the error of a PutValue or Delete
// of a key the Writer does not write that way: one outside its prefix, or
// a task's (Put and Complete write those, checked).
var ErrInvalidKey = errors.New("taskstore: invalid key")

// PutValue writes value at key, a key under the Writer's prefix other than
// a task's, such as a schedule's (keyspace.Schedule). The write is fenced
// by the term and batched like a task's, and the writes of one key apply
// in the order they were made. Errors are those of Put, ErrInvalidKey
// instead of ErrInvalidRecord.
func (w *Writer) PutValue(ctx context.Context, key, value string) error {
	if err := w.writeRaw(ctx, key, value, false); err != nil {
		return fmt.Errorf("taskstore: cannot put %s: %w", truncateN(key, 256), err)
	}
	return nil
}

// Delete deletes key, a key PutValue may write, fenced like PutValue.
// Deleting a key that does not exist succeeds.
func (w *Writer) Delete(ctx context.Context, key string) error {
	if err := w.writeRaw(ctx, key, "", true); err != nil {
		return fmt.Errorf("taskstore: cannot delete %s: %w", truncateN(key, 256), err)
	}
	return nil
}

func (w *Writer) writeRaw(ctx context.Context, key, value string, del bool) error {
	if w.fenced.Load() {
		return ErrFenced
	}
	switch {
	case !strings.HasPrefix(key, w.prefix+"/") || key == w.prefix+"/":
		return fmt.Errorf("%w: not under the prefix %s", ErrInvalidKey, w.prefix)
	case strings.HasPrefix(key, keyspace.Tasks(w.prefix)):
		return fmt.Errorf("%w: a task's key: Put and Complete write tasks", ErrInvalidKey)
	}
	return w.submit(ctx, &op{ctx: ctx, key: key, value: value, del: del, done: make(chan error, 1)})
}
