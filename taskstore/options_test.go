package taskstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/meshpool/meshpool/taskstore"
)

func TestOptions(t *testing.T) {
	d := taskstore.DefaultOptions()
	if d.MaxBatch != 128 || d.MaxInFlight != 4 || d.Retention != 10*time.Minute || d.Timeout != 5*time.Second {
		t.Fatalf("DefaultOptions = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (taskstore.Options{Retention: taskstore.MaxRetention}).Validate(); err != nil {
		t.Fatalf("longest retention: %v", err)
	}
	if err := (taskstore.Options{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	for _, o := range []taskstore.Options{{MaxBatch: -1}, {MaxInFlight: -1}, {Retention: -1}, {Retention: taskstore.MaxRetention + time.Nanosecond}, {Retention: 1<<63 - 1}, {Timeout: -1}} {
		if err := o.Validate(); !errors.Is(err, taskstore.ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}
