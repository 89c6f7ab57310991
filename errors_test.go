package meshpool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/meshpool/meshpool"
)

// A permanent error keeps its cause's text and identity, through more
// wrapping and through Typed.
func TestPermanent(t *testing.T) {
	if err := meshpool.Permanent(nil); err != nil {
		t.Fatalf("Permanent(nil) = %v, want nil", err)
	}
	cause := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	for _, tt := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"plain", cause, false},
		{"nil", nil, false},
		{"permanent", meshpool.Permanent(cause), true},
		{"wrapped after", fmt.Errorf("cannot load: %w", meshpool.Permanent(cause)), true},
		{"wrapped before", meshpool.Permanent(fmt.Errorf("cannot load: %w", cause)), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := meshpool.IsPermanent(tt.err); got != tt.permanent {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.permanent)
			}
			if tt.err == nil {
				return
			}
			var pe *fs.PathError
			if !errors.Is(tt.err, fs.ErrNotExist) || !errors.As(tt.err, &pe) || pe != cause {
				t.Fatalf("%v: errors.Is/As do not see the cause", tt.err)
			}
		})
	}
	if got, want := meshpool.Permanent(cause).Error(), cause.Error(); got != want {
		t.Fatalf("text %q, want the cause's %q", got, want)
	}

	h := meshpool.Typed(func(context.Context, *meshpool.Task, int) (int, error) {
		return 0, meshpool.Permanent(errors.New("negative"))
	})
	if _, err := h.Work(t.Context(), &meshpool.Task{Payload: json.RawMessage("-1")}); !meshpool.IsPermanent(err) {
		t.Fatalf("through Typed: %v is not permanent", err)
	}
}
