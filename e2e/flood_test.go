package e2e_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// TestFloodOfOneSubmitter: three node processes; one submitter floods the
// master with durable tasks from 64 senders for 10 s, while another submits
// one task every 100 ms. The calm one gets every task accepted, promptly,
// and the flood holds no more than --max-pending-per-submitter. It logs the
// figures and the master's memory (issue 14, item 5: before the bound, a
// 10 s flood left the other submitter nothing, and the master's RSS grew
// from 42 to 130–400 MiB).
func TestFloodOfOneSubmitter(t *testing.T) {
	etcd := startEtcd(t)
	const prefix, quota = "/flood", 2000
	ips := []string{"127.0.0.180", "127.0.0.181", "127.0.0.182"}
	procs := map[string]*proc{}
	for i, ip := range ips {
		procs[ip] = startNode(t, etcd, prefix, ip, string(rune('a'+i)), "--task-interval", "0", "--work-time", "0s",
			"--max-pending-per-submitter", strconv.Itoa(quota))
	}
	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "3 members and a master", func() bool {
		var ok bool
		st, ok = status(t, etcd, prefix)
		return ok && len(st.Members) == 3 && st.Master != nil
	})
	master := procs[st.Master.IP]
	var server string
	for _, ip := range ips {
		if ip != st.Master.IP {
			server = "nats://" + ip + ":4222" // a worker's, as most clients' would be
		}
	}
	calm, err := client.Dial(server, nats.UserInfo("calm", "an open cluster takes any"))
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Close()
	testutil.Eventually(t, 20*time.Second, "the master takes a task", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		r, err := calm.Submit(ctx, message.Submit{Number: 1})
		return err == nil && r.Accepted
	})
	rssBefore := rssMiB(t, master.cmd.Process.Pid)

	ctx, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	flood, err := nats.Connect(server, nats.CustomInboxPrefix(message.InboxPrefix("flood")))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	var sent, accepted, refused, overQuota, lost atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for n := int64(0); ctx.Err() == nil; n++ {
				sent.Add(1)
				msg, err := flood.Request(message.SubmitSubject("flood"), []byte(`{"number":`+strconv.FormatInt(n%1000, 10)+`}`), 2*time.Second)
				switch {
				case err != nil:
					lost.Add(1)
				case strings.Contains(string(msg.Data), `"accepted":true`):
					accepted.Add(1)
				default:
					refused.Add(1)
					if strings.Contains(string(msg.Data), "--max-pending-per-submitter") {
						overQuota.Add(1)
					}
				}
			}
		})
	}
	rssMax := rssBefore
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			rssMax = max(rssMax, rssMiB(t, master.cmd.Process.Pid))
			time.Sleep(250 * time.Millisecond)
		}
	}()
	var took []time.Duration
	var failures []string
	for ctx.Err() == nil {
		begin := time.Now()
		sctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		r, err := calm.Submit(sctx, message.Submit{Number: 7})
		cancel()
		took = append(took, time.Since(begin))
		if err != nil || !r.Accepted {
			failures = append(failures, fmt.Sprintf("%+v %v", r, err))
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	<-sampled
	time.Sleep(2 * time.Second)
	rssAfter := rssMiB(t, master.cmd.Process.Pid)
	slices.Sort(took)
	t.Logf("flood (64 senders, 10 s): %d sent, %d accepted, %d refused, %d unanswered in 2 s; calm: %d of %d accepted, p50 %s, p99 %s, max %s; master RSS %d MiB before, %d at most, %d 2 s after",
		sent.Load(), accepted.Load(), refused.Load(), lost.Load(), len(took)-len(failures), len(took),
		took[len(took)/2].Round(time.Microsecond), took[len(took)*99/100].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond),
		rssBefore, rssMax, rssAfter)
	if len(failures) > 0 {
		t.Fatalf("%d of calm's %d submissions failed during the flood, the first: %s", len(failures), len(took), failures[0])
	}
	if overQuota.Load() == 0 {
		t.Fatalf("the flood was never refused for its bound %d (%d refused for other reasons)", quota, refused.Load())
	}
}

// rssMiB is the resident memory of process pid, in MiB.
func rssMiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb >> 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
