package schedule

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/etcdpage"
	"github.com/meshpool/meshpool/internal/keyspace"
)

// loadPage is how many keys one Get of Load asks for: schedules are up to
// MaxRequest bytes each, and a page must stay far below gRPC's limits.
const loadPage = 100

// Load reads every schedule under keyspace.Schedules(prefix) and returns
// them by name, with the revision they were read at (one snapshot, however
// many pages; watch from rev+1 to follow what changes next). Records that
// do not decode are left out and reported, after the whole read, in a
// *BadRecordsError (errors.Is ErrBadRecord) that names their keys; the
// schedules returned with it are all the others, so one corrupt key cannot
// stop a master from firing the rest. Any other error means nothing was
// loaded.
func Load(ctx context.Context, cli *clientv3.Client, prefix string) ([]Schedule, int64, error) {
	if err := keyspace.CheckPrefix(prefix); err != nil {
		return nil, 0, fmt.Errorf("schedule: %w", err)
	}
	var (
		schedules []Schedule
		bad       BadRecordsError
	)
	rev, err := etcdpage.Range(ctx, cli, keyspace.Schedules(prefix), loadPage,
		func(n int64) { schedules = make([]Schedule, 0, n) },
		func(key string, value []byte) {
			s, err := Decode(key, value)
			if err != nil {
				bad.Keys = append(bad.Keys, key)
				bad.Errs = append(bad.Errs, err)
				return
			}
			schedules = append(schedules, s)
		})
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("schedule: cannot load schedules: %w", err)
	case len(bad.Keys) > 0:
		return schedules, rev, &bad
	}
	return schedules, rev, nil
}

// BadRecordsError lists the records Load left out because they do not
// decode. It matches ErrBadRecord with errors.Is.
type BadRecordsError struct {
	Keys []string
	Errs []error
}

// badRecordsQuoted is how many of the errors Error quotes.
const badRecordsQuoted = 3

// Error gives the count and the first few reasons, each cut short.
func (e *BadRecordsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "schedule: %d schedule records do not decode, left out", len(e.Keys))
	for i, err := range e.Errs[:min(len(e.Errs), badRecordsQuoted)] {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		b.WriteString(sep + truncateN(err.Error(), 256))
	}
	if n := len(e.Errs) - badRecordsQuoted; n > 0 {
		fmt.Fprintf(&b, "; and %d more", n)
	}
	return b.String()
}

// Unwrap gives each decoding error, so errors.Is(err, ErrBadRecord) holds.
func (e *BadRecordsError) Unwrap() []error { return e.Errs }
