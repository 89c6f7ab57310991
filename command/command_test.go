//go:build unix

package command_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/command"
	"github.com/meshpool/meshpool/internal/testutil"
)

// script writes body as an executable /bin/sh script in a new directory and
// returns its path. The tests do not run in parallel: a script written while
// another test forks could not be run for a moment (ETXTBSY).
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newHandler(t *testing.T, cmdline string, opts command.Options) meshpool.Handler {
	t.Helper()
	h, err := command.New(cmdline, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", cmdline, err)
	}
	return h
}

func task(payload string) *meshpool.Task {
	return &meshpool.Task{UUID: "0190f1f4-7c3a-7d2e-9c1b-3f5a6b7c8d9e", Kind: "test", Payload: json.RawMessage(payload), Attempt: 2}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string // a script's body, or with run, the command line itself
		run     bool
		payload string
		want    string // "" for a null result
	}{
		{name: "json kept as it is", cmdline: `printf '  {"a": [1, 2]}\n\n'`, want: `{"a": [1, 2]}`},
		{name: "json number", cmdline: `echo 42`, want: `42`},
		{name: "text is a string", cmdline: `echo 'a < b & "c"'; echo second line`, want: `"a < b & \"c\"\nsecond line"`},
		{name: "no output is null", cmdline: `exit 0`},
		{name: "white space is null", cmdline: `printf ' \n\t\n'`},
		{name: "text not utf-8", cmdline: `printf 'ab\377c'`, want: `"ab\ufffdc"`},
		{name: "json not utf-8", cmdline: `printf '{"s": "\377"}'`, want: "{\"s\": \"\uFFFD\"}"},
		{name: "payload on stdin", cmdline: `cat`, payload: `{"x": [1, "two"]}`, want: `{"x": [1, "two"]}`},
		{name: "big payload on stdin", cmdline: `cat`, payload: `"` + strings.Repeat("x", 600<<10) + `"`, want: `"` + strings.Repeat("x", 600<<10) + `"`},
		{name: "big payload not read", cmdline: `echo done`, payload: `"` + strings.Repeat("x", 600<<10) + `"`, want: `"done"`},
		{name: "no shell quoting", cmdline: `echo 'a   b'`, run: true, want: `"'a b'"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmdline := tc.cmdline
			if !tc.run {
				cmdline = script(t, tc.cmdline)
			}
			h := newHandler(t, cmdline, command.Options{})
			got, err := h.Work(t.Context(), task(tc.payload))
			if err != nil {
				t.Fatalf("Work: %v", err)
			}
			if tc.want == "" {
				if got != nil {
					t.Fatalf("result %q, want null (nil)", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Fatalf("result %.100q, want %.100q", got, tc.want)
			}
			if !json.Valid(got) || !utf8.Valid(got) {
				t.Fatalf("result %q is not valid JSON in UTF-8", got)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("MESHPOOL_TEST_NODE", "from the node")
	h := newHandler(t, script(t, `printf '{"uuid": "%s", "kind": "%s", "attempt": %s, "node": "%s", "extra": "%s"}' \
		"$MESHPOOL_TASK_UUID" "$MESHPOOL_TASK_KIND" "$MESHPOOL_TASK_ATTEMPT" "$MESHPOOL_TEST_NODE" "$EXTRA"`),
		command.Options{Env: []string{"EXTRA=from options", "MESHPOOL_TASK_KIND=not the task's"}})
	tk := task(`null`)
	res, err := h.Work(t.Context(), tk)
	if err != nil {
		t.Fatalf("Work: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(res, &got); err != nil {
		t.Fatalf("result %s: %v", res, err)
	}
	want := map[string]any{"uuid": tk.UUID, "kind": tk.Kind, "attempt": float64(tk.Attempt), "node": "from the node", "extra": "from options"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("environment %v, want %v", got, want)
	}
}

func TestFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []string // in the error's text
		code int      // the exit code, -1 for a signal
		// permanent: the error is meshpool.Permanent (exit status 65)
		permanent bool
	}{
		{name: "exit status", body: "echo first >&2\necho 'last words' >&2\nexit 3",
			want: []string{"command: exit status 3: first\nlast words"}, code: 3},
		{name: "many lines of stderr", body: "seq 1 100000 >&2\necho 'the end' >&2\nexit 7",
			want: []string{"command: exit status 7: …99992\n", "100000\nthe end"}, code: 7},
		{name: "one huge line of stderr", body: "head -c 3000000 /dev/zero | tr '\\0' x >&2\necho ' and the end' >&2\nexit 1",
			want: []string{"command: exit status 1: …xxx", "xxx and the end"}, code: 1},
		{name: "exit status 65 is permanent", body: "echo 'bad input' >&2\nexit 65",
			want: []string{"command: exit status 65 (permanent: no more attempts): bad input"}, code: command.ExitPermanent, permanent: true},
		{name: "killed by a signal", body: "echo dying >&2\nkill -KILL $$",
			want: []string{"command: signal: killed: dying"}, code: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, script(t, tc.body), command.Options{})
			res, err := h.Work(t.Context(), task(`{}`))
			if err == nil {
				t.Fatalf("Work: result %s, want an error", res)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %.300q does not contain %q", err, w)
				}
			}
			if n := len(err.Error()); n > 4200 {
				t.Errorf("error is %d bytes long", n)
			}
			if n := strings.Count(err.Error(), "\n"); n > 9 {
				t.Errorf("error has %d lines", n+1)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Errorf("error %v: not an *exec.ExitError with code %d", err, tc.code)
			}
			if got := meshpool.IsPermanent(err); got != tc.permanent {
				t.Errorf("error %v: permanent %v, want %v", err, got, tc.permanent)
			}
		})
	}
}

func TestMaxResult(t *testing.T) {
	h := newHandler(t, script(t, `printf %s "$1"`)+" 0123456789", command.Options{MaxResult: 10})
	if res, err := h.Work(t.Context(), task(`{}`)); err != nil || string(res) != `"0123456789"` {
		t.Fatalf("10 bytes of 10: result %s, error %v", res, err)
	}

	h = newHandler(t, script(t, `printf %s "$1"`)+" 0123456789a", command.Options{MaxResult: 10})
	if res, err := h.Work(t.Context(), task(`{}`)); err == nil || err.Error() != "command: result is larger than 10 bytes" {
		t.Fatalf("11 bytes of 10: result %s, error %v", res, err)
	}

	// A program that writes without end is stopped at once, not after the grace.
	h = newHandler(t, "yes", command.Options{MaxResult: 1000, KillGrace: time.Minute})
	start := time.Now()
	if res, err := h.Work(t.Context(), task(`{}`)); err == nil || err.Error() != "command: result is larger than 1000 bytes" {
		t.Fatalf("endless output: result %.100s, error %v", res, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("endless output: Work took %s", took)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.sh")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cmdline string
		opts    command.Options
		want    string
		is      error
	}{
		{name: "empty", cmdline: " \t ", want: "command: empty command line"},
		{name: "not in PATH", cmdline: "meshpool-no-such-program --flag",
			want: `command: "meshpool-no-such-program": executable file not found in $PATH`, is: exec.ErrNotFound},
		{name: "no such file", cmdline: filepath.Join(dir, "missing.sh"),
			want: fmt.Sprintf("command: %q: no such file or directory", filepath.Join(dir, "missing.sh")), is: fs.ErrNotExist},
		{name: "not executable", cmdline: plain, want: fmt.Sprintf("command: %q: not executable", plain)},
		{name: "directory", cmdline: dir + "/", want: fmt.Sprintf("command: %q: not a regular file", dir+"/")},
		{name: "negative MaxResult", cmdline: "true", opts: command.Options{MaxResult: -1}, want: "command: MaxResult is negative: -1"},
		{name: "negative KillGrace", cmdline: "true", opts: command.Options{KillGrace: -time.Second}, want: "command: KillGrace is negative: -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := command.New(tc.cmdline, tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("New: handler %v, error %v; want error %q", h, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("New: error %v is not %v", err, tc.is)
			}
		})
	}
}

// reaped fails the test when pid is a child of ours that nobody reaped.
func reaped(t *testing.T, pid int) {
	t.Helper()
	var ws syscall.WaitStatus
	if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("process %d: wait4 = %d, %v; want ECHILD (reaped, or not our child)", pid, got, err)
	}
}

// child is a line that starts, in the background, a process that ignores
// SIGTERM and writes its pid to $DIR/child.pid.
const child = `sh -c 'trap "" TERM; echo $$ > "$DIR/child.pid"; exec sleep 60' &`

// awaitChild is a line that waits until the child has written its pid.
const awaitChild = `while [ ! -s "$DIR/child.pid" ]; do sleep 0.01; done`

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		timeout time.Duration // the task's; 0 to cancel once both pids are known
		grace   time.Duration
		want    error
		slow    bool // the leader ignores SIGTERM: Work takes the grace
	}{
		{name: "cancelled, child ignores SIGTERM", grace: 3 * time.Second, want: context.Canceled,
			body: "echo $$ > \"$DIR/leader.pid\"\n" + child + "\nwait"},
		{name: "deadline, leader ignores SIGTERM", timeout: time.Second, grace: time.Second, want: context.DeadlineExceeded, slow: true,
			body: "trap '' TERM\necho $$ > \"$DIR/leader.pid\"\n" + child + "\nwhile :; do wait; done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHandler(t, script(t, tc.body), command.Options{KillGrace: tc.grace, Env: []string{"DIR=" + dir}})
			ctx, cancel := context.WithCancel(t.Context())
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(t.Context(), tc.timeout)
			}
			defer cancel()

			type outcome struct {
				res json.RawMessage
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := h.Work(ctx, task(`{}`))
				done <- outcome{res, err}
			}()
			leader, kid := testutil.ReadPID(t, filepath.Join(dir, "leader.pid")), testutil.ReadPID(t, filepath.Join(dir, "child.pid"))
			t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) }) // should the test fail
			var stopped time.Time
			if deadline, ok := ctx.Deadline(); ok {
				stopped = deadline
			} else {
				cancel()
				stopped = time.Now()
			}

			var o outcome
			select {
			case o = <-done:
			case <-time.After(tc.grace + 10*time.Second):
				t.Fatal("Work did not return")
			}
			took := time.Since(stopped)
			if o.err == nil || !errors.Is(o.err, tc.want) || !strings.HasPrefix(o.err.Error(), "command: cancelled: "+tc.want.Error()) {
				t.Fatalf("Work: result %s, error %v; want command: cancelled: %v", o.res, o.err, tc.want)
			}
			if tc.slow && took < tc.grace-100*time.Millisecond {
				t.Errorf("Work returned %s after the end of its context, before the grace of %s", took, tc.grace)
			}
			if !tc.slow && took > tc.grace/2 {
				t.Errorf("Work returned %s after the end of its context: the leader's exit should end the grace", took)
			}
			if !testutil.ProcessGone(leader) {
				t.Errorf("leader %d is still there", leader)
			}
			reaped(t, leader)
			testutil.Eventually(t, 2*time.Second, "the child gone", func() bool { return testutil.ProcessGone(kid) })
			reaped(t, kid)
		})
	}
}

func TestLeftBehind(t *testing.T) {
	t.Run("in the group", func(t *testing.T) {
		// The child keeps stdout open: Work must not wait for it, let alone
		// for the grace.
		dir := t.TempDir()
		h := newHandler(t, script(t, "echo $$ > \"$DIR/leader.pid\"\n"+child+"\n"+awaitChild+"\necho '{\"done\": true}'"),
			command.Options{KillGrace: time.Minute, Env: []string{"DIR=" + dir}})
		start := time.Now()
		res, err := h.Work(t.Context(), task(`{}`))
		if err != nil || string(res) != `{"done": true}` {
			t.Fatalf("Work: result %s, error %v", res, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Work took %s", took)
		}
		leader, kid := testutil.ReadPID(t, filepath.Join(dir, "leader.pid")), testutil.ReadPID(t, filepath.Join(dir, "child.pid"))
		t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) })
		if !testutil.ProcessGone(leader) {
			t.Errorf("leader %d is still there", leader)
		}
		reaped(t, leader)
		testutil.Eventually(t, 2*time.Second, "the child gone", func() bool { return testutil.ProcessGone(kid) })
	})

	t.Run("out of the group", func(t *testing.T) {
		// A child of its own session is out of reach; Work waits for the
		// pipes it holds for the grace only.
		if _, err := exec.LookPath("setsid"); err != nil {
			t.Skip("no setsid")
		}
		dir := t.TempDir()
		grace := 500 * time.Millisecond
		h := newHandler(t, script(t, "setsid sh -c 'echo $$ > \"$DIR/child.pid\"; exec sleep 60' &\n"+awaitChild+"\necho out"),
			command.Options{KillGrace: grace, Env: []string{"DIR=" + dir}})
		start := time.Now()
		res, err := h.Work(t.Context(), task(`{}`))
		kid := testutil.ReadPID(t, filepath.Join(dir, "child.pid"))
		_ = syscall.Kill(kid, syscall.SIGKILL)
		if err != nil || string(res) != `"out"` {
			t.Fatalf("Work: result %s, error %v", res, err)
		}
		if took := time.Since(start); took < grace || took > grace+5*time.Second {
			t.Errorf("Work took %s with a grace of %s", took, grace)
		}
	})
}

func TestCancelledBeforeStart(t *testing.T) {
	dir := t.TempDir()
	h := newHandler(t, script(t, `touch "$DIR/ran"`), command.Options{Env: []string{"DIR=" + dir}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Work(ctx, task(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Work: error %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the program ran: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	h := newHandler(t, script(t, `cat; echo "$MESHPOOL_TASK_ATTEMPT" >&2; exit "$(( MESHPOOL_TASK_ATTEMPT % 3 ))"`), command.Options{})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			payload := fmt.Sprintf(`{"i": %d}`, i)
			tk := task(payload)
			tk.Attempt = i
			res, err := h.Work(t.Context(), tk)
			if i%3 == 0 {
				if err != nil || string(res) != payload {
					t.Errorf("task %d: result %s, error %v", i, res, err)
				}
				return
			}
			if want := fmt.Sprintf("command: exit status %d: %d", i%3, i); err == nil || err.Error() != want {
				t.Errorf("task %d: error %v, want %s", i, err, want)
			}
		})
	}
	wg.Wait()
}
