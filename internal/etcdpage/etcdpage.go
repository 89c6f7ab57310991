// Package etcdpage reads every key under an etcd prefix page by page, all
// pages at the revision of the first: one consistent snapshot however many
// keys there are.
package etcdpage

import (
	"context"
	"fmt"
	"strings"

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

// Load reads every record under prefix as Range does and decodes each with
// decode. Records that do not decode are left out and returned in bad; the
// records returned with it are all the others, so one corrupt key cannot
// stop the caller from using the rest. An error means nothing was loaded.
func Load[T any](ctx context.Context, cli *clientv3.Client, prefix string, page int64,
	decode func(key string, value []byte) (T, error)) (records []T, rev int64, bad Bad, err error) {
	rev, err = Range(ctx, cli, prefix, page,
		func(n int64) { records = make([]T, 0, n) },
		func(key string, value []byte) {
			r, err := decode(key, value)
			if err != nil {
				bad.Keys = append(bad.Keys, key)
				bad.Errs = append(bad.Errs, err)
				return
			}
			records = append(records, r)
		})
	if err != nil {
		return nil, 0, Bad{}, err
	}
	return records, rev, bad, nil
}

// Bad is the records a Load left out because they do not decode: each
// package's BadRecordsError is one.
type Bad struct {
	Keys []string
	Errs []error
}

// badRecordsQuoted is how many of the errors Describe quotes: a log line
// carrying it stays short however many records are bad.
const badRecordsQuoted = 3

// Describe says what bad records of noun pkg's Load left out: the count
// and the first few reasons, each cut short, never every key (thousands of
// garbage records must not make one huge line).
func Describe(pkg, noun string, errs []error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d %s records do not decode, left out", pkg, len(errs), noun)
	for i, err := range errs[:min(len(errs), badRecordsQuoted)] {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		b.WriteString(sep + cut(err.Error(), 256))
	}
	if n := len(errs) - badRecordsQuoted; n > 0 {
		fmt.Fprintf(&b, "; and %d more", n)
	}
	return b.String()
}

// cut cuts s to n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
