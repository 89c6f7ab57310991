package taskstore

import (
	"context"
	"fmt"

	"github.com/meshpool/meshpool/internal/etcdpage"
	"github.com/meshpool/meshpool/internal/keyspace"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadPage is how many keys one Get of Load asks for.
const loadPage = 1000

// Load reads every record under keyspace.Tasks(prefix) and returns them in key order
// with the revision they were read at. It reads page by page, every page at
// the revision of the first, so the result is one consistent snapshot however
// many records there are; watch from rev+1 to follow what changes next.
// Records that do not decode are left out and reported, after the whole
// read, in a *BadRecordsError (errors.Is ErrBadRecord) that names their
// keys; the records returned with it are all the others, so one corrupt key
// cannot stop a master from resuming every other task. Any other error means
// nothing was loaded. If etcd compacts that revision between two pages, Load
// fails with the compaction error; call it again.
func Load(ctx context.Context, cli *clientv3.Client, prefix string) ([]Record, int64, error) {
	if err := keyspace.CheckPrefix(prefix); err != nil {
		return nil, 0, fmt.Errorf("taskstore: %w", err)
	}
	records, rev, bad, err := etcdpage.Load(ctx, cli, keyspace.Tasks(prefix), loadPage, Decode)
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("taskstore: cannot load tasks: %w", err)
	case len(bad.Keys) > 0:
		return records, rev, (*BadRecordsError)(&bad)
	}
	return records, rev, nil
}

// Get reads the record of task uuid. found is false when there is none. A
// record that does not decode is an error matching ErrBadRecord, with found
// true: a task by that uuid exists, in a form this node cannot read.
func Get(ctx context.Context, cli *clientv3.Client, prefix, uuid string) (r Record, found bool, err error) {
	if err := keyspace.CheckPrefix(prefix); err != nil {
		return Record{}, false, fmt.Errorf("taskstore: %w", err)
	}
	resp, err := cli.Get(ctx, keyspace.Task(prefix, uuid))
	if err != nil {
		return Record{}, false, fmt.Errorf("taskstore: cannot read task %s: %w", truncate(uuid), err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, false, nil
	}
	r, err = Decode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
	return r, true, err
}

// BadRecordsError lists the records Load left out because they do not
// decode. It matches ErrBadRecord with errors.Is.
type BadRecordsError etcdpage.Bad

// Error gives the count and the first few reasons (etcdpage.Describe).
func (e *BadRecordsError) Error() string { return etcdpage.Describe("taskstore", "task", e.Errs) }

// Unwrap gives each decoding error, so errors.Is(err, ErrBadRecord) holds.
func (e *BadRecordsError) Unwrap() []error { return e.Errs }
