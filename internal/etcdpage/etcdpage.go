// Package etcdpage reads every key under an etcd prefix page by page, all
// pages at the revision of the first: one consistent snapshot however many
// keys there are.
package etcdpage

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Range calls each for every key under prefix, in key order, reading
// pages of page keys, every page at the first page's revision, which it
// returns: watch from rev+1 to follow what changes next. sized, when not
// nil, is called once with the number of keys before the first each. If
// etcd compacts that revision between two pages, Range fails with the
// compaction error; call it again.
func Range(ctx context.Context, cli *clientv3.Client, prefix string, page int64, sized func(count int64), each func(key string, value []byte)) (rev int64, err error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(page)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, from, opts...)
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
			if sized != nil {
				sized(resp.Count)
			}
		}
		for _, kv := range resp.Kvs {
			each(string(kv.Key), kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
