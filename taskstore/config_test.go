package taskstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/meshpool/meshpool/taskstore"
)

func TestConfig(t *testing.T) {
	d := taskstore.DefaultConfig()
	if d.MaxBatch != 128 || d.MaxInFlight != 4 || d.Retention != 10*time.Minute || d.Timeout != 5*time.Second || d.MaxLeaseKeys != 1000 {
		t.Fatalf("DefaultConfig = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (taskstore.Config{Retention: taskstore.MaxRetention}).Validate(); err != nil {
		t.Fatalf("longest retention: %v", err)
	}
	if err := (taskstore.Config{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	if err := (taskstore.Config{MaxBatch: 16, MaxLeaseKeys: 16}).Validate(); err != nil {
		t.Fatalf("as many keys per lease as writes per txn: %v", err)
	}
	for _, o := range []taskstore.Config{{MaxBatch: -1}, {MaxInFlight: -1}, {Retention: -1}, {Retention: taskstore.MaxRetention + time.Nanosecond}, {Retention: 1<<63 - 1}, {Timeout: -1},
		{MaxLeaseKeys: -1}, {MaxLeaseKeys: 100}, {MaxBatch: 16, MaxLeaseKeys: 8}, {MaxBatch: 2000}} {
		if err := o.Validate(); !errors.Is(err, taskstore.ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", o, err)
		}
	}
}
