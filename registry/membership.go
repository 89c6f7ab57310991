package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meshpool/meshpool/internal/keyspace"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership is the set of registered nodes at one etcd revision.
type Membership struct {
	// Revision is the etcd revision at which this member set was read. It
	// only orders snapshots from one etcd: it goes back to small numbers when
	// etcd is replaced by one with a new data directory.
	Revision int64
	// Members are the valid records under <prefix>/nodes/, sorted by ID;
	// this node is among them once it is registered.
	Members []Record
}

// Lookup returns the record of node id.
func (m Membership) Lookup(id string) (Record, bool) {
	i, ok := slices.BinarySearchFunc(m.Members, id, func(r Record, id string) int {
		return strings.Compare(r.ID, id)
	})
	if !ok {
		return Record{}, false
	}
	return m.Members[i], true
}

// Others returns every member except self, sorted by ID, in a new slice.
func (m Membership) Others(self string) []Record {
	others := make([]Record, 0, len(m.Members))
	for _, r := range m.Members {
		if r.ID != self {
			others = append(others, r)
		}
	}
	return others
}

// IDs returns the member IDs, sorted.
func (m Membership) IDs() []string {
	ids := make([]string, len(m.Members))
	for i, r := range m.Members {
		ids[i] = r.ID
	}
	return ids
}

// sameMembers reports whether a and b, both sorted by ID, hold the same records.
func sameMembers(a, b []Record) bool {
	return slices.EqualFunc(a, b, Record.same)
}

// List reads the membership once, for example for `meshpool status`.
// prefix is the meshpool prefix, like "/meshpool". Records that do not
// decode are left out; records of every cluster name are kept.
func List(ctx context.Context, cli *clientv3.Client, prefix string) (Membership, error) {
	resp, err := cli.Get(ctx, keyspace.Nodes(prefix), clientv3.WithPrefix())
	if err != nil {
		return Membership{}, fmt.Errorf("registry: cannot list %s: %w", keyspace.Nodes(prefix), err)
	}
	members, _ := decodeAll(keyspace.Nodes(prefix), "", resp.Kvs)
	return Membership{Revision: resp.Header.Revision, Members: members}, nil
}

// ErrOtherCluster is matched (errors.Is) by the error of a skipped record of
// another cluster name.
var ErrOtherCluster = errors.New("registry: node of another cluster")

// decodeAll decodes the records under nodesPrefix into a list sorted by ID,
// and returns the keys that did not decode with their errors. Unless cluster
// is "", a record of another cluster name is left out too (one without a
// cluster name is kept: it was written by an older version).
func decodeAll(nodesPrefix, cluster string, kvs []*mvccpb.KeyValue) ([]Record, []badRecord) {
	var bad []badRecord
	members := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		r, err := DecodeRecord(string(kv.Key), kv.Value)
		switch {
		case err != nil:
		case string(kv.Key) != nodesPrefix+r.ID:
			err = fmt.Errorf("%w at %s: not a key of the form %s<id>", ErrBadRecord, clip(string(kv.Key)), nodesPrefix)
		case cluster != "" && r.Cluster != "" && r.Cluster != cluster:
			err = fmt.Errorf("%w: %s is of cluster %q, not %q", ErrOtherCluster, r.ID, r.Cluster, cluster)
		}
		if err != nil {
			bad = append(bad, badRecord{key: string(kv.Key), size: len(kv.Value), modRev: kv.ModRevision, err: err})
			continue
		}
		members = append(members, r)
	}
	slices.SortFunc(members, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return members, bad
}

type badRecord struct {
	key    string
	size   int // bytes of the value
	modRev int64
	err    error
}
