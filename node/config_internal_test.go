package node

import (
	"reflect"
	"testing"
)

// A zero field means its default, but for the fields whose zero is a
// setting of its own: a default added to DefaultConfig is added to
// withDefaults too.
func TestZeroFieldsMeanTheDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := DefaultConfig()
	// Zero means something of its own here (see Config).
	want.TaskInterval, want.ShutdownGrace, want.ResultRetention, want.CompactionRetention = 0, 0, 0, 0
	want.MaxPendingPerSubmitter = 0 // no bound
	want.WorkTime = WorkTime{}      // --work-time 0s: tasks take no time (make bench)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("zero config with defaults\n%+v\nwant\n%+v", got, want)
	}
	set := DefaultConfig()
	set.Advertise = "127.0.0.2"
	if again := set.withDefaults(); !reflect.DeepEqual(again, set) {
		t.Fatalf("withDefaults changed a config with every field set:\n%+v\nwant\n%+v", again, set)
	}
}
