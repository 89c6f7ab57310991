package main

import (
	"flag"
	"testing"

	"github.com/meshpool/meshpool/node"
)

// --max-pending-per-submitter, when not given, is a quarter of
// --max-pending, so that lowering the one lowers the other; given, it is
// what was given.
func TestPerSubmitterDefault(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, 25_000},
		{[]string{"--max-pending", "1000"}, 250},
		{[]string{"--max-pending", "3"}, 1},
		{[]string{"--max-pending", "1000", "--max-pending-per-submitter", "0"}, 0},
		{[]string{"--max-pending-per-submitter", "7"}, 7},
	} {
		cfg := node.DefaultConfig()
		fs := flag.NewFlagSet("node", flag.ContinueOnError)
		var w workFlags
		w.bind(fs, &cfg)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		perSubmitterDefault(fs, &cfg)
		if cfg.MaxPendingPerSubmitter != tt.want {
			t.Errorf("%v: per submitter %d, want %d", tt.args, cfg.MaxPendingPerSubmitter, tt.want)
		}
	}
}
