package schedule

import (
	"context"
	"fmt"

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
	records, rev, bad, err := etcdpage.Load(ctx, cli, keyspace.Schedules(prefix), loadPage, Decode)
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("schedule: cannot load schedules: %w", err)
	case len(bad.Keys) > 0:
		return records, rev, (*BadRecordsError)(&bad)
	}
	return records, rev, nil
}

// BadRecordsError lists the records Load left out because they do not
// decode. It matches ErrBadRecord with errors.Is.
type BadRecordsError etcdpage.Bad

// Error gives the count and the first few reasons (etcdpage.Describe).
func (e *BadRecordsError) Error() string { return etcdpage.Describe("schedule", "schedule", e.Errs) }

// Unwrap gives each decoding error, so errors.Is(err, ErrBadRecord) holds.
func (e *BadRecordsError) Unwrap() []error { return e.Errs }
