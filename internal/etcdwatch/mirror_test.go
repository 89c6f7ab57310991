package etcdwatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/etcdwatch"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

const (
	prefix = "/meshpool-test/items/"
	// msgInterrupted is the warning Run logs before it re-establishes a
	// watch that failed (and only then: a Resync is not logged).
	msgInterrupted = "etcd watch interrupted, retrying"
)

// outsideKeys are near the prefix but not under it.
var outsideKeys = []string{"/meshpool-test/items", "/meshpool-test/items0", "/meshpool-test/other/a"}

func TestInitialSnapshot(t *testing.T) {
	tests := []struct {
		name string
		keys []string // written under the prefix, in this order, before Run
	}{
		{name: "no key"},
		{name: "one key", keys: []string{"a"}},
		{name: "keys written out of order", keys: []string{"m", "c", "x/1", "a", "z", "c/2", "b", "k", "e", "q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			p := prefix + strings.ReplaceAll(tt.name, " ", "-") + "/"
			for i, k := range tt.keys {
				put(t, env.direct, p+k, "v"+strconv.Itoa(i))
			}
			// Written last, so the store revision is not that of any key
			// in the snapshot: the snapshot must carry the Get's revision.
			for _, k := range slices.Concat(outsideKeys, []string{strings.TrimSuffix(p, "/"), p[:len(p)-1] + "0"}) {
				put(t, env.direct, k, "outside")
			}
			want := get(t, env.direct, p)

			m, _ := newMirror(t, env.mirrorCli, p)
			r := run(t, m)
			first := r.waitFor(t, "a first snapshot", anySnapshot)

			if first.Revision != want.Header.Revision {
				t.Errorf("first snapshot at revision %d, want the Get's revision %d", first.Revision, want.Header.Revision)
			}
			if !slices.IsSortedFunc(first.KVs, func(a, b *mvccpb.KeyValue) int { return strings.Compare(string(a.Key), string(b.Key)) }) {
				t.Errorf("first snapshot not sorted by key: %v", keysOf(first.KVs))
			}
			if err := sameKVs(first.KVs, want.Kvs); err != nil {
				t.Errorf("first snapshot: %v", err)
			}
			if len(first.KVs) != len(tt.keys) {
				t.Errorf("first snapshot has %d keys, want the %d written under the prefix", len(first.KVs), len(tt.keys))
			}
		})
	}
}

func TestFollowsPutsAndDeletes(t *testing.T) {
	env := newEnv(t)
	put(t, env.direct, prefix+"a", "1")
	m, _ := newMirror(t, env.mirrorCli, prefix)
	r := run(t, m)
	first := r.waitFor(t, "the first snapshot", anySnapshot)
	// etcd sends a watch that starts at a past revision the events since
	// then within 100ms (its sync loop): a watch from the Get's revision,
	// instead of the next one, would replay the Get's last event here.
	testutil.ConsistentlyNil(t, 300*time.Millisecond, func() error {
		if n := r.count(); n != 1 {
			return fmt.Errorf("%d snapshots without any change, at revisions %v", n, revisionsOf(r.all()))
		}
		return nil
	})

	// Each step changes the prefix once (one revision) and must produce
	// exactly one snapshot, at that revision, equal to etcd's own view of
	// the prefix at that revision.
	steps := []struct {
		name  string
		write func(t *testing.T, cli *clientv3.Client) int64 // returns the revision of the change
	}{
		{"put a new key", func(t *testing.T, cli *clientv3.Client) int64 {
			return put(t, cli, prefix+"b", "1")
		}},
		{"overwrite a key", func(t *testing.T, cli *clientv3.Client) int64 {
			return put(t, cli, prefix+"a", "2")
		}},
		{"delete a key", func(t *testing.T, cli *clientv3.Client) int64 {
			return del(t, cli, prefix+"a")
		}},
		{"put a nested key", func(t *testing.T, cli *clientv3.Client) int64 {
			return put(t, cli, prefix+"b/c", "1")
		}},
		{"delete two keys at once", func(t *testing.T, cli *clientv3.Client) int64 {
			return del(t, cli, prefix+"b", clientv3.WithPrefix())
		}},
		{"put two keys in one transaction", func(t *testing.T, cli *clientv3.Client) int64 {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp, err := cli.Txn(ctx).Then(clientv3.OpPut(prefix+"c", "1"), clientv3.OpPut(prefix+"d", "1")).Commit()
			if err != nil {
				t.Fatal(err)
			}
			return resp.Header.Revision
		}},
		{"writes outside the prefix, then one inside", func(t *testing.T, cli *clientv3.Client) int64 {
			for _, k := range outsideKeys {
				put(t, cli, k, "outside")
				del(t, cli, k)
			}
			return put(t, cli, prefix+"e", "1")
		}},
		{"delete every key", func(t *testing.T, cli *clientv3.Client) int64 {
			return del(t, cli, prefix, clientv3.WithPrefix())
		}},
	}
	revs := []int64{first.Revision}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			seen := r.count()
			rev := st.write(t, env.direct)
			revs = append(revs, rev)
			r.waitFor(t, fmt.Sprintf("a snapshot at revision %d or later", rev), func(s etcdwatch.Snapshot) error {
				if s.Revision < rev {
					return fmt.Errorf("last snapshot at revision %d", s.Revision)
				}
				return nil
			})
			// Watch events arrive in order, so any extra snapshot (a
			// replayed event, a write outside the prefix) is there by now.
			news := r.all()[seen:]
			if len(news) != 1 {
				t.Fatalf("%d snapshots for one change, at revisions %v", len(news), revisionsOf(news))
			}
			if news[0].Revision != rev {
				t.Errorf("snapshot at revision %d, want the change's revision %d", news[0].Revision, rev)
			}
			if err := sameKVs(news[0].KVs, get(t, env.direct, prefix, clientv3.WithRev(rev)).Kvs); err != nil {
				t.Errorf("snapshot at revision %d: %v", rev, err)
			}
		})
		if !ok {
			return
		}
	}
	if got := revisionsOf(r.all()); !slices.Equal(got, revs) {
		t.Errorf("snapshots at revisions %v, want one per change, at %v", got, revs)
	}
}

func TestBurstOfWrites(t *testing.T) {
	env := newEnv(t)
	for i := range 5 {
		put(t, env.direct, prefix+"k"+strconv.Itoa(i), "before")
	}
	m, logs := newMirror(t, env.mirrorCli, prefix)
	r := run(t, m)
	r.waitFor(t, "the first snapshot", anySnapshot)

	// 4 writers × 50 operations on 20 shared keys: puts, deletes (some of
	// an absent key, which changes nothing) and writes outside the prefix.
	const writers, perWriter, nkeys = 4, 50, 20
	var (
		mu      sync.Mutex
		changes = map[int64]bool{} // revisions that changed the prefix
		errs    []error
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("%sk%d", prefix, (w*7+i*3)%nkeys)
				rev, changed, err := burstOp(t.Context(), env.direct, i%5, key, fmt.Sprintf("w%d-%d", w, i))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if changed {
					changes[rev] = true
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	last := slices.Max(slices.Collect(maps.Keys(changes)))

	final := r.waitFor(t, fmt.Sprintf("a snapshot at the last change's revision %d", last), func(s etcdwatch.Snapshot) error {
		if s.Revision != last {
			return fmt.Errorf("last snapshot at revision %d", s.Revision)
		}
		return nil
	})
	if err := sameKVs(final.KVs, get(t, env.direct, prefix).Kvs); err != nil {
		t.Fatalf("final snapshot differs from a direct Get: %v", err)
	}

	snaps := r.all()
	t.Logf("%d changes under the prefix, %d snapshots", len(changes), len(snaps))
	for i, s := range snaps {
		if i > 0 {
			if prev := snaps[i-1].Revision; s.Revision <= prev {
				t.Fatalf("snapshot %d at revision %d after one at %d: revisions %v", i, s.Revision, prev, revisionsOf(snaps))
			}
			if !changes[s.Revision] {
				t.Errorf("snapshot %d at revision %d, which is not the revision of a change under the prefix", i, s.Revision)
			}
		}
		if err := sameKVs(s.KVs, get(t, env.direct, prefix, clientv3.WithRev(s.Revision)).Kvs); err != nil {
			t.Errorf("snapshot %d differs from etcd's state at its revision %d: %v", i, s.Revision, err)
		}
	}
	if n := logs.count(msgInterrupted); n > 0 {
		t.Errorf("the watch was interrupted %d times, so the burst was not followed by one watch", n)
	}
}

// burstOp does operation kind on key and says at which revision it changed
// the prefix, if it did.
func burstOp(ctx context.Context, cli *clientv3.Client, kind int, key, val string) (rev int64, changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch kind {
	case 1, 3:
		resp, err := cli.Delete(ctx, key)
		if err != nil {
			return 0, false, err
		}
		return resp.Header.Revision, resp.Deleted > 0, nil
	case 4:
		_, err := cli.Put(ctx, outsideKeys[len(val)%len(outsideKeys)], val)
		return 0, false, err
	default:
		resp, err := cli.Put(ctx, key, val)
		if err != nil {
			return 0, false, err
		}
		return resp.Header.Revision, true, nil
	}
}

func TestCompactedWatchIsReestablished(t *testing.T) {
	env := newEnv(t)
	for _, k := range []string{"a", "b", "c"} {
		put(t, env.direct, prefix+k, "before")
	}
	m, logs := newMirror(t, env.mirrorCli, prefix)
	r := run(t, m)
	r.waitFor(t, "a snapshot of a, b and c", func(s etcdwatch.Snapshot) error {
		return sameKVs(s.KVs, get(t, env.direct, prefix).Kvs)
	})
	seen := r.count()

	// While the mirror cannot reach etcd, change the prefix and compact
	// away the revisions its watch would resume from.
	env.proxy.cut()
	put(t, env.direct, prefix+"d", "during the outage")
	put(t, env.direct, prefix+"a", "changed during the outage")
	del(t, env.direct, prefix+"b")
	put(t, env.direct, outsideKeys[0], "outside")
	want := get(t, env.direct, prefix)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := env.direct.Compact(ctx, want.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	env.proxy.restore(t)

	next := r.next(t, "a snapshot after the outage", seen)
	if next.Revision != want.Header.Revision {
		t.Errorf("first snapshot after the outage at revision %d, want %d", next.Revision, want.Header.Revision)
	}
	if err := sameKVs(next.KVs, want.Kvs); err != nil {
		t.Errorf("first snapshot after the outage differs from a direct Get: %v", err)
	}
	if logs.count(msgInterrupted, "compacted") == 0 {
		t.Errorf("no %q warning about a compaction: the compaction path was not taken", msgInterrupted)
	}
}

// A watch that resumes more than 1000 revisions behind is caught up by etcd
// in several responses, each with the header revision of the whole store:
// a snapshot must not claim that revision before it has seen every change
// up to it.
func TestCatchUpNeverRunsAheadOfItsRevision(t *testing.T) {
	env := newEnv(t)
	m, logs := newMirror(t, env.mirrorCli, prefix)
	r := run(t, m)
	r.waitFor(t, "the first snapshot", anySnapshot)
	seen := r.count()

	env.proxy.cut()
	const writers, perWriter = 4, 300
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last int64
		errs []error
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				rev, _, err := burstOp(t.Context(), env.direct, 0, fmt.Sprintf("%sk%d", prefix, (w*perWriter+i)%40), strconv.Itoa(i))
				mu.Lock()
				last = max(last, rev)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	env.proxy.restore(t)

	r.waitFor(t, fmt.Sprintf("a snapshot at the last revision %d", last), func(s etcdwatch.Snapshot) error {
		if s.Revision != last {
			return fmt.Errorf("last snapshot at revision %d", s.Revision)
		}
		return nil
	})
	if n := logs.count(msgInterrupted); n > 0 {
		t.Fatalf("the watch was re-established %d times: the catch-up path was not taken", n)
	}
	news := r.all()[seen:]
	t.Logf("caught up %d writes in %d snapshots, at revisions %v", writers*perWriter, len(news), revisionsOf(news))
	for i, s := range news {
		if err := sameKVs(s.KVs, get(t, env.direct, prefix, clientv3.WithRev(s.Revision)).Kvs); err != nil {
			t.Errorf("snapshot %d after the outage differs from etcd's state at its revision %d: %v", i, s.Revision, err)
		}
		if i > 0 && s.Revision <= news[i-1].Revision {
			t.Errorf("snapshot %d after the outage at revision %d, after one at %d", i, s.Revision, news[i-1].Revision)
		}
	}
	if len(news) < 2 {
		t.Errorf("the watch caught up in %d response(s): the several-responses case was not exercised", len(news))
	}
}

func TestResync(t *testing.T) {
	tests := []struct {
		name string
		// change is done between the first snapshot and Resync; nothing
		// that the mirror's watch reports.
		change func(t *testing.T, env *env)
	}{
		{
			name:   "nothing changed",
			change: func(*testing.T, *env) {},
		},
		{
			// The new etcd's revisions are below the ones the watch
			// resumes from, so only a new Get shows its content.
			name: "etcd replaced by an empty one",
			change: func(t *testing.T, env *env) {
				env.proxy.cut()
				env.etcd.Replace()
				env.proxy.restore(t)
				put(t, env.direct, prefix+"new", "on the new etcd")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			for _, k := range []string{"a", "b", "c"} {
				put(t, env.direct, prefix+k, "1")
				put(t, env.direct, prefix+k, "2")
			}
			m, logs := newMirror(t, env.mirrorCli, prefix)
			r := run(t, m)
			r.waitFor(t, "a snapshot of a, b and c", func(s etcdwatch.Snapshot) error {
				return sameKVs(s.KVs, get(t, env.direct, prefix).Kvs)
			})

			tt.change(t, env)
			want := get(t, env.direct, prefix)
			seen := r.count()
			m.Resync()
			got := r.next(t, "a snapshot after Resync", seen)
			if got.Revision != want.Header.Revision {
				t.Errorf("snapshot after Resync at revision %d, want %d", got.Revision, want.Header.Revision)
			}
			if err := sameKVs(got.KVs, want.Kvs); err != nil {
				t.Errorf("snapshot after Resync differs from a direct Get: %v", err)
			}
			// A failed watch also leads to a new Get; it did not happen,
			// so the snapshot above is Resync's doing.
			if n := logs.count(msgInterrupted); n > 0 {
				t.Errorf("the watch was interrupted %d times: the snapshot does not prove that Resync re-read", n)
			}
		})
	}
}

// etcd replaced by an empty one under a quiet watch: the client resumes the
// watch on its own, from a revision the new etcd has not reached, so no
// event would ever come. The mirror notices without a Resync, through its
// periodic check or a caller's response header, reads the new etcd and
// says so in the snapshot.
func TestReplacedEtcdIsNoticed(t *testing.T) {
	tests := []struct {
		name  string
		check time.Duration
		// notice runs once the new etcd serves; mark was taken before.
		notice func(t *testing.T, env *env, m *etcdwatch.Mirror, mark etcdwatch.Mark)
	}{
		{
			name:   "periodic check",
			check:  100 * time.Millisecond,
			notice: func(*testing.T, *env, *etcdwatch.Mirror, etcdwatch.Mark) {},
		},
		{
			name: "a caller's response",
			notice: func(t *testing.T, env *env, m *etcdwatch.Mirror, mark etcdwatch.Mark) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				resp, err := env.mirrorCli.Put(ctx, outsideKeys[2], "x")
				if err != nil {
					t.Fatal(err)
				}
				if !m.Replaced(mark, resp.Header) {
					t.Fatalf("Replaced = false for revision %d", resp.Header.Revision)
				}
				if m.Replaced(mark, resp.Header) {
					t.Error("Replaced = true twice for the same replacement")
				}
				m.Resync()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			for i := range 50 {
				put(t, env.direct, prefix+"old", strconv.Itoa(i))
			}
			m, logs := newMirror(t, env.mirrorCli, prefix)
			m.CheckInterval = tt.check
			r := run(t, m)
			r.waitFor(t, "the old key", func(s etcdwatch.Snapshot) error {
				return sameKVs(s.KVs, get(t, env.direct, prefix).Kvs)
			})
			mark := m.Mark()
			// A Put on the same etcd is no replacement.
			resp, err := env.mirrorCli.Put(t.Context(), outsideKeys[2], "x")
			if err != nil {
				t.Fatal(err)
			}
			if m.Replaced(mark, resp.Header) {
				t.Fatal("Replaced = true on the same etcd")
			}

			env.proxy.cut()
			env.etcd.Replace()
			env.proxy.restore(t)
			put(t, env.direct, prefix+"new", "on the new etcd")
			tt.notice(t, env, m, mark)

			want := get(t, env.direct, prefix)
			got := r.waitFor(t, "the new etcd's keys", func(s etcdwatch.Snapshot) error {
				return sameKVs(s.KVs, want.Kvs)
			})
			// The mirror may read the new etcd before the put above (a
			// check between Replace and the put, on a loaded machine): the
			// put then comes by the watch. Either way the first snapshot
			// of the new etcd is a full read marked Replaced.
			var first *etcdwatch.Snapshot
			for _, s := range r.all() {
				if s.Replaced {
					first = &s
					break
				}
			}
			switch {
			case first == nil:
				t.Error("no snapshot marked Replaced")
			case !first.Full:
				t.Errorf("the snapshot marked Replaced, at revision %d, is not a full read", first.Revision)
			case first.Revision > want.Header.Revision:
				t.Errorf("the snapshot marked Replaced is at revision %d, after the new etcd's %d", first.Revision, want.Header.Revision)
			}
			if got.Revision != want.Header.Revision {
				t.Errorf("snapshot at revision %d, want %d", got.Revision, want.Header.Revision)
			}
			if n := logs.count("etcd was replaced (revision went backwards or cluster ID changed), its keys replace the old ones"); n != 1 {
				t.Errorf("%d warnings that etcd was replaced, want 1", n)
			}
		})
	}
}

func TestRunStopsPromptly(t *testing.T) {
	tests := []struct {
		name      string
		configure func(m *etcdwatch.Mirror)
		// before, if set, runs before Run; reach waits until Run is in
		// the state under test.
		before func(t *testing.T, env *env)
		reach  func(t *testing.T, env *env, r *runner, logs *logRecorder)
		// etcdUp says etcd still answers when ctx ends, so the client's
		// watch must end with Run.
		etcdUp bool
	}{
		{
			name: "watching",
			reach: func(t *testing.T, _ *env, r *runner, _ *logRecorder) {
				r.waitFor(t, "a first snapshot", anySnapshot)
			},
			etcdUp: true,
		},
		{
			name: "watch reconnecting to a closed etcd",
			reach: func(t *testing.T, env *env, r *runner, _ *logRecorder) {
				r.waitFor(t, "a first snapshot", anySnapshot)
				env.proxy.cut()
				env.etcd.Stop()
				accepted := env.proxy.accepts()
				env.proxy.restore(t)
				testutil.EventuallyNil(t, 5*time.Second, func() error {
					if env.proxy.accepts() == accepted {
						return errors.New("the client has not tried to reconnect")
					}
					return nil
				})
			},
		},
		{
			name:      "first Get to a closed etcd",
			configure: func(m *etcdwatch.Mirror) { m.RequestTimeout = time.Minute },
			before:    func(_ *testing.T, env *env) { env.etcd.Stop() },
			reach: func(t *testing.T, env *env, _ *runner, _ *logRecorder) {
				// The client connects lazily: a connection means the Get
				// has started.
				testutil.EventuallyNil(t, 5*time.Second, func() error {
					if env.proxy.accepts() == 0 {
						return errors.New("the client has not tried to connect")
					}
					return nil
				})
			},
		},
		{
			name: "backing off after a failed Get",
			configure: func(m *etcdwatch.Mirror) {
				m.RequestTimeout = 100 * time.Millisecond
				m.MinBackoff, m.MaxBackoff = time.Minute, time.Minute
			},
			before: func(_ *testing.T, env *env) { env.etcd.Stop() },
			reach: func(t *testing.T, _ *env, _ *runner, logs *logRecorder) {
				testutil.EventuallyNil(t, 5*time.Second, func() error {
					if logs.count(msgInterrupted) == 0 {
						return errors.New("no failed Get yet")
					}
					return nil
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Registered first, so it runs after every other cleanup
			// (clients, proxy, etcd) has run.
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

			env := newEnv(t)
			m, logs := newMirror(t, env.mirrorCli, prefix)
			if tt.configure != nil {
				tt.configure(m)
			}
			if tt.before != nil {
				tt.before(t, env)
			}
			r := run(t, m)
			tt.reach(t, env, r, logs)
			if tt.etcdUp && clientWatchGoroutines() == 0 {
				t.Fatal("no goroutine of the client's watch found while the mirror watches: the check below is blind")
			}

			took, err := r.stop()
			if took > time.Second {
				t.Errorf("Run returned %s after its context ended, want < 1s", took)
			}
			if err != nil {
				t.Error(err)
			}
			if tt.etcdUp {
				// The client stays open: a watch the mirror did not end
				// would keep its goroutines until the client closes.
				testutil.EventuallyNil(t, 5*time.Second, func() error {
					if n := clientWatchGoroutines(); n > 0 {
						return fmt.Errorf("%d goroutines of the client's watch left after Run returned", n)
					}
					return nil
				})
			}
		})
	}
}

// --- helpers ---

// env is an embedded etcd, a client straight to it, and a client that goes
// through a proxy, for the mirror.
type env struct {
	etcd      *etcdtest.Server
	direct    *clientv3.Client
	proxy     *proxy
	mirrorCli *clientv3.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := etcdtest.Start(t, embedetcd.Config{})
	p := startProxy(t, e.Endpoint())
	return &env{etcd: e, direct: newClient(t, e.Endpoint()), proxy: p, mirrorCli: newClient(t, p.addr)}
}

// newClient returns a client that reconnects quickly after an outage.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, endpoint, func(c *clientv3.Config) {
		c.DialTimeout = 2 * time.Second
		c.DialOptions = []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		})}
	})
}

func put(t *testing.T, cli *clientv3.Client, key, val string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, key, val)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

// del deletes and returns the revision; it fails the test if nothing was
// deleted, since that changes no revision.
func del(t *testing.T, cli *clientv3.Client, key string, opts ...clientv3.OpOption) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Delete(ctx, key, opts...)
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	if resp.Deleted == 0 {
		t.Fatalf("delete %s: nothing deleted", key)
	}
	return resp.Header.Revision
}

// get reads every key under p, sorted by key.
func get(t *testing.T, cli *clientv3.Client, p string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, p, append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	return resp
}

// sameKVs says how got differs from want, comparing every field that etcd
// sets, in order.
func sameKVs(got, want []*mvccpb.KeyValue) error {
	g, w := kvStrings(got), kvStrings(want)
	if !slices.Equal(g, w) {
		return fmt.Errorf("keys\n\t%s\nwant\n\t%s", strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
	return nil
}

func kvStrings(kvs []*mvccpb.KeyValue) []string {
	s := make([]string, len(kvs))
	for i, kv := range kvs {
		s[i] = fmt.Sprintf("%s=%q create=%d mod=%d version=%d lease=%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return s
}

func keysOf(kvs []*mvccpb.KeyValue) []string {
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = string(kv.Key)
	}
	return keys
}

func revisionsOf(snaps []etcdwatch.Snapshot) []int64 {
	revs := make([]int64, len(snaps))
	for i, s := range snaps {
		revs[i] = s.Revision
	}
	return revs
}

// newMirror returns a mirror of p that retries quickly, and its logs.
func newMirror(t *testing.T, cli *clientv3.Client, p string) (*etcdwatch.Mirror, *logRecorder) {
	logs := newLogRecorder(t)
	m := etcdwatch.New(cli, p, slog.New(logs))
	m.RequestTimeout = 2 * time.Second
	m.MinBackoff, m.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	return m, logs
}

// runner is a Mirror's Run in the background, with the snapshots it delivered.
type runner struct {
	run   *testutil.Running
	pause time.Duration // each onChange takes this long: a consumer that falls behind

	mu    sync.Mutex
	snaps []etcdwatch.Snapshot
}

// run starts m.Run until the test ends (or stop).
func run(t *testing.T, m *etcdwatch.Mirror) *runner {
	t.Helper()
	return runSlow(t, m, 0)
}

// runSlow is run with an onChange that takes pause after each snapshot.
func runSlow(t *testing.T, m *etcdwatch.Mirror, pause time.Duration) *runner {
	t.Helper()
	r := &runner{pause: pause}
	r.run = testutil.Go(t, func(ctx context.Context) error { return m.Run(ctx, r.onChange) })
	return r
}

func (r *runner) onChange(s etcdwatch.Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.mu.Unlock()
	time.Sleep(r.pause)
}

// stop cancels Run's context and says how long Run took to return, and an
// error if it returned one or did not return; safe to call twice.
func (r *runner) stop() (time.Duration, error) {
	err := r.run.Stop()
	return r.run.Took(), err
}

func (r *runner) all() []etcdwatch.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snaps)
}

func (r *runner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// waitFor waits until there is a snapshot and cond accepts the last one,
// and returns it.
func (r *runner) waitFor(t *testing.T, what string, cond func(etcdwatch.Snapshot) error) etcdwatch.Snapshot {
	t.Helper()
	var last etcdwatch.Snapshot
	testutil.EventuallyNil(t, 10*time.Second, func() error {
		snaps := r.all()
		if len(snaps) == 0 {
			return fmt.Errorf("waiting for %s: no snapshot", what)
		}
		last = snaps[len(snaps)-1]
		if err := cond(last); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		return nil
	})
	return last
}

// next waits for snapshot number seen (counting from 0) and returns it.
func (r *runner) next(t *testing.T, what string, seen int) etcdwatch.Snapshot {
	t.Helper()
	testutil.EventuallyNil(t, 10*time.Second, func() error {
		if r.count() <= seen {
			return fmt.Errorf("waiting for %s: none yet", what)
		}
		return nil
	})
	return r.all()[seen]
}

func anySnapshot(etcdwatch.Snapshot) error { return nil }

// clientWatchGoroutines counts the goroutines of etcd clients' watches.
func clientWatchGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "etcd/client/v3.(*watchGRPCStream)") {
			n++
		}
	}
	return n
}

// proxy forwards TCP connections to target. cut drops every connection and
// refuses new ones until restore.
type proxy struct {
	addr, target string

	mu       sync.Mutex
	ln       net.Listener // nil while cut
	conns    map[net.Conn]struct{}
	accepted int
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.ln != ln { // cut since Accept returned
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.accepted++
			p.conns[c] = struct{}{}
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

// pipe copies between c and a new connection to the target until either
// side ends or the proxy is cut.
func (p *proxy) pipe(c net.Conn) {
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	defer p.drop(up)
	p.mu.Lock()
	_, live := p.conns[c]
	if live {
		p.conns[up] = struct{}{}
	}
	p.mu.Unlock()
	if !live { // cut while dialling
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, c); c.Close(); up.Close() })
	wg.Go(func() { _, _ = io.Copy(c, up); c.Close(); up.Close() })
	wg.Wait()
}

func (p *proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// cut closes every connection and stops listening.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *proxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: cannot listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// accepts returns how many connections the proxy has accepted.
func (p *proxy) accepts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// close cuts and waits for every goroutine of the proxy; safe to call twice.
func (p *proxy) close() {
	p.cut()
	p.wg.Wait()
}

// logRecorder is a slog.Handler that keeps every record, and prints them
// if the test fails.
type logRecorder struct {
	mu      *sync.Mutex
	entries *[]logEntry
	with    []slog.Attr
}

type logEntry struct {
	msg  string
	line string // "LEVEL msg key=value ..."
}

func newLogRecorder(t *testing.T) *logRecorder {
	l := &logRecorder{mu: &sync.Mutex{}, entries: new([]logEntry)}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, e := range *l.entries {
				t.Logf("mirror log: %s", e.line)
			}
		}
	})
	return l
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	attr := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%s", a.Key, a.Value); return true }
	for _, a := range l.with {
		attr(a)
	}
	r.Attrs(attr)
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.entries = append(*l.entries, logEntry{msg: r.Message, line: b.String()})
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *l
	c.with = append(slices.Clip(l.with), as...)
	return &c
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// count returns how many records have message msg and contain every one of
// substrs.
func (l *logRecorder) count(msg string, substrs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range *l.entries {
		if e.msg == msg && !slices.ContainsFunc(substrs, func(s string) bool { return !strings.Contains(e.line, s) }) {
			n++
		}
	}
	return n
}

// TestLaggingWatchIsNotANewEtcd: a watch response carries the revision etcd
// was at when it sent the response, which may be below what a revision
// check read after it was sent and before it was read (a consumer that
// falls behind, a loaded machine). That is no replaced etcd: the mirror
// must go on with its one watch, not read the prefix again.
func TestLaggingWatchIsNotANewEtcd(t *testing.T) {
	env := newEnv(t)
	m, logs := newMirror(t, env.mirrorCli, prefix)
	m.CheckInterval = time.Millisecond
	r := runSlow(t, m, 20*time.Millisecond)
	r.waitFor(t, "the first snapshot", anySnapshot)
	// Each round, while the consumer is busy with the last snapshot: a put
	// under the prefix, whose response waits in the watch, then one
	// outside it, which the next check reads and no watch response shows.
	// Whether the check or the waiting response comes first is a coin toss
	// each round (a select), so 40 rounds leave the check first in some.
	for i := range 40 {
		rev := put(t, env.direct, fmt.Sprintf("%sk%02d", prefix, i), "v")
		put(t, env.direct, outsideKeys[0], strconv.Itoa(i))
		r.waitFor(t, fmt.Sprintf("a snapshot at revision %d or later", rev), func(s etcdwatch.Snapshot) error {
			if s.Revision < rev {
				return fmt.Errorf("last snapshot at revision %d", s.Revision)
			}
			return nil
		})
	}
	if n := logs.count("etcd's revision went backwards or its cluster ID changed, reading it again"); n > 0 {
		t.Errorf("a lagging watch taken for a new etcd %d times: the prefix was read again for nothing", n)
	}
	full := 0
	for _, s := range r.all() {
		if s.Full {
			full++
		}
	}
	if full != 1 {
		t.Errorf("%d full snapshots (reads of the whole prefix), want 1", full)
	}
}
