package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

const noSpace = "etcd is out of space (NOSPACE alarm): "

// TestEtcdOutOfSpaceIsReportedAndRecovers fills the cluster's etcd with
// history until it raises NOSPACE: a submission is refused saying so,
// /readyz and /status of every node show the alarm; once an operator has
// compacted, defragmented and disarmed etcd, submissions are accepted again
// and the nodes are ready.
func TestEtcdOutOfSpaceIsReportedAndRecovers(t *testing.T) {
	c := newClusterOn(t, embedetcd.Config{QuotaBackendBytes: 8 << 20}, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.ResultRetention = time.Minute
		cfg.EtcdMaxFill = 1 // etcd's own NOSPACE, not the master's refusal before it
	})
	master, _ := c.startN(2)
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	value := strings.Repeat("x", 256<<10)
	for i := 0; ; i++ {
		_, err := c.cli.Put(t.Context(), c.cfg.Prefix+"/fill", value)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i == 1000 {
			t.Fatalf("filling etcd: %d puts, %v", i, err)
		}
	}

	msg, err := nc.Request(message.SubjectSubmit, []byte(`{"number":5}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply message.SubmitReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Accepted || !strings.Contains(reply.Error, noSpace) {
		t.Fatalf("submission to a full etcd answered %s, want a refusal saying %q", msg.Data, noSpace)
	}
	for _, n := range c.running() {
		testutil.Eventually(t, 15*time.Second, n.ID()+" shows the NOSPACE alarm", func() bool {
			code, body := httpGet(t, n, "/readyz")
			var s node.Status
			getJSON(t, n, "/status", &s)
			return code == http.StatusServiceUnavailable && strings.HasPrefix(string(body), noSpace) &&
				slices.Equal(s.EtcdAlarms, []string{"NOSPACE"})
		})
	}

	// The operator's steps (docs/failures.md): compact, defragment, disarm.
	resp, err := c.cli.Get(t.Context(), c.cfg.Prefix, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Defragment(t.Context(), c.etcd.Endpoint()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.AlarmDisarm(t.Context(), &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}

	cl := dial(t, master)
	if reply, err := cl.Submit(t.Context(), message.Submit{Number: 5}); err != nil || !reply.Accepted {
		t.Fatalf("submission after space was freed: %+v, %v", reply, err)
	}
	for _, n := range c.running() {
		testutil.Eventually(t, 15*time.Second, n.ID()+" ready again", func() bool {
			code, _ := httpGet(t, n, "/readyz")
			return code == http.StatusOK && n.Status().EtcdAlarms == nil
		})
	}
}

// TestDurableTasksWaitForRoomInEtcd: once etcd has EtcdMaxFill of its
// quota in use, the master refuses new durable tasks as temporary, saying
// why, and takes tasks of durability none; /status shows the space. When
// room comes back (an operator deletes and compacts), durable tasks are
// taken again, and etcd never raised NOSPACE.
func TestDurableTasksWaitForRoomInEtcd(t *testing.T) {
	c := newClusterOn(t, embedetcd.Config{QuotaBackendBytes: 16 << 20}, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.EtcdMaxFill = 0.5
	})
	master, _ := c.startN(2)
	nc, err := nats.Connect(clientURL(t, master))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	submit := func(body string) message.SubmitReply {
		t.Helper()
		msg, err := nc.Request(message.SubjectSubmit, []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := message.DecodeSubmitReply(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	const first = "0b5f0000-0000-4000-8000-0000000000f1"
	if r := submit(`{"uuid":"` + first + `","kind":"nobody","payload":1}`); !r.Accepted {
		t.Fatalf("first durable task: %+v", r)
	}

	value := strings.Repeat("x", 256<<10)
	var keys int
	for ; master.Status().EtcdSpace.Fill() < 0.5; keys++ {
		if _, err := c.cli.Put(t.Context(), fmt.Sprintf("%s/fill/%d", c.cfg.Prefix, keys), value); err != nil || keys == 200 {
			t.Fatalf("filling etcd: %d puts, %v; space %+v", keys, err, master.Status().EtcdSpace)
		}
		time.Sleep(300 * time.Millisecond) // the space is asked every 3 s: fill slowly
	}
	const why = "busy: etcd holds "
	testutil.Eventually(t, 10*time.Second, "a durable task refused for lack of room", func() bool {
		r := submit(`{"number":2}`)
		return !r.Accepted && r.Temporary && strings.HasPrefix(r.Error, why) && strings.Contains(r.Error, "--etcd-max-fill 50%")
	})
	if r := submit(`{"number":3,"durability":"none"}`); !r.Accepted {
		t.Fatalf("a task of durability none while etcd is full: %+v", r)
	}
	// A task already accepted is answered as the duplicate it is, not
	// refused: its submitter must not submit the work again.
	if r := submit(`{"uuid":"` + first + `","kind":"nobody","payload":1}`); !r.Accepted || !r.Duplicate {
		t.Fatalf("the first task submitted again while etcd is full: %+v, want a duplicate", r)
	}
	var s node.Status
	getJSON(t, master, "/status", &s)
	if s.EtcdSpace.Quota != 16<<20 || s.EtcdSpace.InUse < 8<<20 {
		t.Errorf("/status etcd_space %+v, want the 16 MiB quota and more than half of it in use", s.EtcdSpace)
	}

	resp, err := c.cli.Delete(t.Context(), c.cfg.Prefix+"/fill/", clientv3.WithPrefix())
	if err != nil || resp.Deleted != int64(keys) {
		t.Fatalf("deleting the fill: %+v, %v", resp, err)
	}
	if _, err := c.cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// And defragment, as docs/failures.md tells operators: compaction
	// alone frees pages when no read still holds them, which under load
	// was not within 30 s once.
	if _, err := c.cli.Defragment(t.Context(), c.etcd.Endpoint()); err != nil {
		t.Fatal(err)
	}
	var last message.SubmitReply
	testutil.EventuallyNil(t, 30*time.Second, func() error {
		if last = submit(`{"number":4}`); !last.Accepted {
			return fmt.Errorf("durable tasks not taken again: %+v; etcd %+v", last, master.Status().EtcdSpace)
		}
		return nil
	})
	if al := master.Status().EtcdAlarms; al != nil {
		t.Errorf("etcd raised %v", al)
	}
}

// TestMasterCompactsEtcdHistory: the master compacts the history older
// than CompactionRetention, so a revision written at the start is gone
// about a retention later. It waits a minute, the least retention.
func TestMasterCompactsEtcdHistory(t *testing.T) {
	const retain = 3 * time.Second
	node.ShortenMinCompactionRetention(t, retain)
	c := newCluster(t, func(cfg *node.Config) {
		cfg.TaskInterval = 0
		cfg.CompactionRetention = retain
	})
	c.startN(1)
	first, err := c.cli.Put(t.Context(), c.cfg.Prefix+"/history", "1")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, retain+30*time.Second, "the first revision compacted", func() bool {
		if _, err := c.cli.Put(t.Context(), c.cfg.Prefix+"/history", "more"); err != nil { // history to compact
			t.Fatal(err)
		}
		_, err := c.cli.Get(t.Context(), c.cfg.Prefix+"/history", clientv3.WithRev(first.Header.Revision))
		return errors.Is(err, rpctypes.ErrCompacted)
	})
	// The cluster goes on: its watches resync if they ever were behind.
	if _, ok := c.converged(); !ok {
		t.Fatal("the cluster is not converged after the compaction")
	}
}
