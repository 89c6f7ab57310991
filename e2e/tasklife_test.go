package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

// A task's whole life against real processes (issue 13): retries, a
// permanent error, a poison task, a hung handler, cancel, run_at and a
// cron schedule across a kill -9 of the master, priorities, retry of a
// failed task. The kinds are those of testdata/life.sh.

var lifeKinds = []string{"flaky", "perm", "poison", "hang", "echo"}

// lifeCluster is etcd and n node processes on 127.0.<net>.2…, each running
// every life kind with --exec, plus extra flags.
type lifeCluster struct {
	t      *testing.T
	etcd   string
	prefix string
	net    int
	procs  map[string]*proc // by IP
	args   map[string][]string
	dir    string // the handlers' directory: runs, pid files, markers
}

func newLifeCluster(t *testing.T, net, n int, extra ...string) *lifeCluster {
	t.Helper()
	script, err := filepath.Abs("testdata/life.sh")
	if err != nil {
		t.Fatal(err)
	}
	c := &lifeCluster{t: t, etcd: startEtcd(t), prefix: "/life", net: net, procs: map[string]*proc{}, args: map[string][]string{}, dir: t.TempDir()}
	var args []string
	for _, k := range lifeKinds {
		args = append(args, "--exec", k+"="+script)
	}
	args = append(args, "--task-interval", "0", "--ttl", "2s", "--backoff", "200ms", "--backoff-max", "1s")
	args = append(args, extra...)
	for i := range n {
		c.startNode(fmt.Sprintf("127.0.%d.%d", net, i+2), args)
	}
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("%d members and a master", n), func() bool {
		st, ok := status(t, c.etcd, c.prefix)
		return ok && len(st.Members) == n && st.Master != nil
	})
	return c
}

func (c *lifeCluster) startNode(ip string, args []string) {
	c.args[ip] = args
	c.procs[ip] = startNode(c.t, c.etcd, c.prefix, ip, "n"+strings.ReplaceAll(ip, ".", "-"), args...)
}

// masterIP is the current master's IP.
func (c *lifeCluster) masterIP() string {
	c.t.Helper()
	var ip string
	testutil.Eventually(c.t, 20*time.Second, "a master", func() bool {
		st, ok := status(c.t, c.etcd, c.prefix)
		if ok && st.Master != nil {
			for _, m := range st.Members {
				if m.ID == st.Master.ID {
					ip = m.IP
				}
			}
		}
		return ip != ""
	})
	return ip
}

// client dials a node other than skip.
func (c *lifeCluster) client(skip string) *client.Client {
	c.t.Helper()
	for ip := range c.procs {
		if ip != skip {
			return c.dial(ip)
		}
	}
	c.t.Fatal("no node to dial")
	return nil
}

// dial connects to the node at ip, and to it alone.
func (c *lifeCluster) dial(ip string) *client.Client {
	c.t.Helper()
	cl, err := client.Dial("nats://"+ip+":4222", nats.IgnoreDiscoveredServers())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// payload is a life kind's payload: the handlers' directory and fields.
func (c *lifeCluster) payload(fields string) json.RawMessage {
	if fields != "" {
		fields = "," + fields
	}
	return json.RawMessage(`{"dir":"` + c.dir + `"` + fields + `}`)
}

// runs reads the handler runs the tasks logged: uuid → attempts, with when.
func (c *lifeCluster) runs() map[string][]handlerRun {
	c.t.Helper()
	f, err := os.Open(filepath.Join(c.dir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]handlerRun{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var id string
		var attempt int
		var at float64
		if _, err := fmt.Sscan(sc.Text(), &id, &attempt, &at); err == nil {
			out[id] = append(out[id], handlerRun{attempt, time.Unix(0, int64(at*1e9))})
		}
	}
	return out
}

type handlerRun struct {
	attempt int
	at      time.Time
}

// final waits until task id is in a final state and returns it.
func final(t *testing.T, cl *client.Client, id string, within time.Duration) message.TaskInfo {
	t.Helper()
	var ti message.TaskInfo
	testutil.Eventually(t, within, "task "+id+" final", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		got, err := cl.Get(ctx, id)
		ti = got
		return err == nil && message.Final(got.State)
	})
	return ti
}

func submit(t *testing.T, cl *client.Client, sub message.Submit) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	reply, err := cl.Submit(ctx, sub)
	if err != nil {
		t.Fatalf("submit %+v: %v", sub, err)
	}
	return reply.UUID
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testutil.Eventually(t, 10*time.Second, "the handler's pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

func TestTaskLife(t *testing.T) {
	c := newLifeCluster(t, 41, 3)
	cl := c.client("")

	t.Run("fails twice, then succeeds: 3 attempts, backoff respected, done once", func(t *testing.T) {
		backoff := 400 * time.Millisecond
		id := submit(t, cl, message.Submit{Kind: "flaky", Payload: c.payload(`"until":3`),
			Options: message.Options{Backoff: message.Duration(backoff), BackoffMax: message.Duration(10 * time.Second)}})
		ti := final(t, cl, id, 30*time.Second)
		if ti.State != message.StateDone || ti.Attempts != 3 || len(ti.Errors) != 2 || !strings.Contains(ti.Errors[1].Error, "flaky: attempt 2") {
			t.Fatalf("task %+v; want done at attempt 3 with the errors of attempts 1 and 2", ti)
		}
		runs := c.runs()[id]
		if len(runs) != 3 {
			t.Fatalf("ran %d times, want 3: %+v", len(runs), runs)
		}
		// Backoff after attempt n: backoff × 2^(n-1), of which at most half is taken off.
		for i, want := range []time.Duration{backoff / 2, backoff} {
			gap := runs[i+1].at.Sub(runs[i].at)
			if gap < want {
				t.Errorf("attempt %d started %s after attempt %d, want at least %s", i+2, gap, i+1, want)
			}
			t.Logf("attempt %d started %s after attempt %d (backoff %s to %s, plus the attempt's own time)", i+2, gap.Round(time.Millisecond), i+1, want, 2*want)
		}
	})

	t.Run("a permanent error: 1 attempt, failed; retried once fixed: done", func(t *testing.T) {
		id := submit(t, cl, message.Submit{Kind: "perm", Payload: c.payload(""), Options: message.Options{MaxAttempts: 5}})
		ti := final(t, cl, id, 20*time.Second)
		if ti.State != message.StateFailed || ti.Attempts != 1 || ti.Result == nil || !strings.Contains(ti.Result.Error, "bad input") {
			t.Fatalf("task %+v; want failed at attempt 1 with the handler's error", ti)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "ok"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(c.dir, "ok"))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if reply, err := cl.Retry(ctx, message.RetryRequest{UUID: id}); err != nil || len(reply.Retried) != 1 {
			t.Fatalf("retry: %+v, %v", reply, err)
		}
		testutil.Eventually(t, 20*time.Second, "the retried task done", func() bool {
			got, err := cl.Get(ctx, id)
			return err == nil && got.State == message.StateDone && got.Attempts == 2 && len(got.Errors) == 1
		})
	})

	t.Run("a hung handler past its timeout: killed, retried, failed", func(t *testing.T) {
		id := submit(t, cl, message.Submit{Kind: "hang", Payload: c.payload(""),
			Options: message.Options{Timeout: message.Duration(time.Second), MaxAttempts: 2}})
		pid := readPID(t, filepath.Join(c.dir, id+".1.pid"))
		ti := final(t, cl, id, 30*time.Second)
		if ti.State != message.StateFailed || ti.Attempts != 2 || !strings.Contains(ti.Errors[0].Error, "timed out after 1s") {
			t.Fatalf("task %+v; want failed after 2 attempts that timed out", ti)
		}
		if alive(pid) {
			t.Fatalf("attempt 1's process %d still runs after its timeout", pid)
		}
		if pid2 := readPID(t, filepath.Join(c.dir, id+".2.pid")); alive(pid2) {
			t.Fatalf("attempt 2's process %d still runs", pid2)
		}
	})

	t.Run("cancel a pending, a delayed and a running task", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		delayed := submit(t, cl, message.Submit{Kind: "echo", Payload: c.payload(""), Options: message.Options{Delay: message.Duration(time.Hour)}})
		if ti, err := cl.Cancel(ctx, delayed); err != nil || ti.State != message.StateCancelled {
			t.Fatalf("cancel of a delayed task: %+v, %v", ti, err)
		}
		running := submit(t, cl, message.Submit{Kind: "hang", Payload: c.payload(""), Options: message.Options{Timeout: message.Duration(time.Minute)}})
		pid := readPID(t, filepath.Join(c.dir, running+".1.pid"))
		asked := time.Now()
		if ti, err := cl.Cancel(ctx, running); err != nil || ti.State != message.StateCancelled {
			t.Fatalf("cancel of a running task: %+v, %v", ti, err)
		}
		testutil.Eventually(t, 10*time.Second, "the cancelled task's process gone", func() bool { return !alive(pid) })
		t.Logf("cancel of a running --exec task: its process gone %s after the request", time.Since(asked).Round(time.Millisecond))
		if ti, err := cl.Get(ctx, running); err != nil || ti.State != message.StateCancelled || ti.Result != nil {
			t.Fatalf("the cancelled task: %+v, %v; want cancelled, no result", ti, err)
		}
		if _, err := cl.Cancel(ctx, running); err == nil || !strings.Contains(err.Error(), "nothing to cancel") {
			t.Fatalf("a second cancel: %v; want nothing to cancel", err)
		}
		if n := len(c.runs()[delayed]); n != 0 {
			t.Fatalf("the cancelled delayed task ran %d times", n)
		}
		list, err := cl.List(ctx, message.ListRequest{State: message.StateCancelled})
		if err != nil || len(list.Tasks) != 2 {
			t.Fatalf("tasks --state cancelled: %+v, %v; want the two", list, err)
		}
	})
}

// A poison task kills every worker it touches: it ends failed after its
// max_attempts, the workers come back (as a supervisor would restart
// them), and every other task is done.
func TestPoisonTask(t *testing.T) {
	c := newLifeCluster(t, 42, 4)
	cl := c.dial(c.masterIP()) // the master runs no task: the poison does not kill it
	poison := submit(t, cl, message.Submit{Kind: "poison", Payload: c.payload(""), Options: message.Options{MaxAttempts: 3}})
	var others []string
	for i := range 20 {
		others = append(others, submit(t, cl, message.Submit{Kind: "echo", Payload: c.payload(`"n":` + strconv.Itoa(i))}))
	}
	// Restart each worker the poison kills, as systemd would.
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for ip, p := range c.procs {
			if p.exited() {
				kills++
				c.startNode(ip, c.args[ip])
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		ti, err := cl.Get(ctx, poison)
		cancel()
		if err == nil && message.Final(ti.State) {
			if ti.State != message.StateFailed || ti.Attempts != 3 || !strings.Contains(ti.Errors[2].Error, "left the cluster") {
				t.Fatalf("poison task %+v; want failed after 3 attempts, its workers gone", ti)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if kills != 3 {
		t.Fatalf("%d workers killed, want 3: one per attempt", kills)
	}
	time.Sleep(3 * time.Second) // no attempt after the last
	for _, p := range c.procs {
		if p.exited() {
			t.Fatal("a worker was killed after the poison task failed")
		}
	}
	for _, id := range others {
		if ti := final(t, cl, id, 30*time.Second); ti.State != message.StateDone {
			t.Fatalf("task %s: %+v; want done", id, ti)
		}
	}
}

// run_at survives a kill -9 of the master: the task runs once, not early.
func TestRunAtAcrossMasterKill(t *testing.T) {
	c := newLifeCluster(t, 43, 3)
	master := c.masterIP()
	cl := c.client(master)
	at := time.Now().Add(5 * time.Second).Truncate(time.Millisecond)
	id := submit(t, cl, message.Submit{Kind: "echo", Payload: c.payload(""), Options: message.Options{RunAt: message.NewTimestamp(at)}})
	time.Sleep(time.Second)
	c.procs[master].signal(syscall.SIGKILL)
	ti := final(t, cl, id, 30*time.Second)
	runs := c.runs()[id]
	if ti.State != message.StateDone || len(runs) != 1 {
		t.Fatalf("task %+v, runs %+v; want done, run once", ti, runs)
	}
	if runs[0].at.Before(at) {
		t.Fatalf("ran at %s, before its run_at %s", runs[0].at, at)
	}
	t.Logf("run_at %s: ran %s after it, across a master kill", at.Format(message.TimeLayout), runs[0].at.Sub(at).Round(time.Millisecond))
}

// Under a backlog on one slot, high priorities run before low ones.
func TestPriorities(t *testing.T) {
	c := newLifeCluster(t, 44, 2, "--slots", "1")
	cl := c.client("")
	// The first task holds the only worker's slot while the others queue.
	hold := submit(t, cl, message.Submit{Kind: "hang", Payload: c.payload(""), Options: message.Options{Timeout: message.Duration(2 * time.Second), MaxAttempts: 1}})
	readPID(t, filepath.Join(c.dir, hold+".1.pid"))
	var low, high []string
	for i := range 5 {
		low = append(low, submit(t, cl, message.Submit{Kind: "echo", Payload: c.payload(`"low":` + strconv.Itoa(i))}))
	}
	for i := range 3 {
		high = append(high, submit(t, cl, message.Submit{Kind: "echo", Payload: c.payload(`"high":` + strconv.Itoa(i)), Options: message.Options{Priority: 9}}))
	}
	for _, id := range append(slices.Clone(low), high...) {
		final(t, cl, id, 30*time.Second)
	}
	runs := c.runs()
	lastHigh, firstLow := time.Time{}, time.Time{}
	for _, id := range high {
		if at := runs[id][0].at; at.After(lastHigh) {
			lastHigh = at
		}
	}
	for _, id := range low {
		if at := runs[id][0].at; firstLow.IsZero() || at.Before(firstLow) {
			firstLow = at
		}
	}
	if !lastHigh.Before(firstLow) {
		t.Fatalf("the last high-priority task ran at %s, after the first low one at %s", lastHigh, firstLow)
	}
}

// A cron schedule across a kill -9 of the master: each tick fires once.
func TestScheduleAcrossMasterKill(t *testing.T) {
	c := newLifeCluster(t, 45, 3)
	master := c.masterIP()
	cl := c.client(master)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	reply, err := cl.AddSchedule(ctx, schedule.Schedule{Name: "every2s", Cron: "@every 2s", Kind: "echo", Payload: c.payload(`"scheduled":1`)})
	if err != nil || len(reply.Schedules) != 1 {
		t.Fatalf("schedule add: %+v, %v", reply, err)
	}
	created := reply.Schedules[0].Created
	time.Sleep(5 * time.Second)
	c.procs[master].signal(syscall.SIGKILL)
	time.Sleep(8 * time.Second)
	if _, err := cl.RemoveSchedule(ctx, "every2s"); err != nil {
		t.Fatal(err)
	}
	// Every run is of one tick's uuid, each tick ran once, and ticks
	// were fired both before and after the kill.
	runs := c.runs()
	ticks := 0
	for k := int64(1); k <= 10; k++ {
		id := schedule.TaskUUID("every2s", created, created.Truncate(time.Second).Add(time.Duration(2*k)*time.Second))
		switch n := len(runs[id]); n {
		case 0:
		case 1:
			ticks++
		default:
			t.Fatalf("tick %d ran %d times", k, n)
		}
	}
	if ticks < 4 {
		t.Fatalf("%d ticks ran in 13s of a 2s schedule, want at least 4 (the catch-up rule may skip those missed during the fail-over)", ticks)
	}
	for id, r := range runs {
		if len(r) > 1 {
			t.Fatalf("task %s ran %d times", id, len(r))
		}
	}
}
