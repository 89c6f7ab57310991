package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/testutil"
)

// The live page is checked in Debian's headless Chromium, driven over the
// DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3,
// answers on fd 4, NUL-separated JSON). --dump-dom and --screenshot cannot be
// used: they capture at the load event, before any result has arrived, and
// --virtual-time-budget never expires while the page's event stream is open.

func TestPageShowsMembersMasterAndResults(t *testing.T) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("e2e: MESHPOOL_E2E=1 but no chromium on PATH; run scripts/install-test-deps.sh")
	}
	etcd := startEtcd(t)
	const prefix = "/e2e-page"
	ips := []string{"127.0.0.82", "127.0.0.83", "127.0.0.84"}
	var procs []*proc
	for i, ip := range ips {
		procs = append(procs, startNode(t, etcd, prefix, ip, string(rune('a'+i))))
	}
	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "status shows 3 members and a master", func() bool {
		var ok bool
		st, ok = status(t, etcd, prefix)
		return ok && len(st.Members) == 3 && st.Master != nil && st.Term > 0
	})
	url := "http://" + ips[1] + ":8222/"

	started := time.Now()
	b := startChromium(t, path)
	page := b.open(url, 1200, 800)
	// What the page shows, read from its stable DOM hooks.
	const probe = `JSON.stringify({
		members: document.querySelectorAll("[data-member]").length,
		masters: document.querySelectorAll('[data-member][data-master="true"]').length,
		results: document.querySelectorAll("[data-result]").length})`
	var seen struct{ Members, Masters, Results int }
	waitFor := func(timeout time.Duration, what string, ok func() bool) {
		deadline := time.Now().Add(timeout)
		for {
			var res struct{ Result struct{ Value string } }
			b.call(page, "Runtime.evaluate", map[string]any{"expression": probe, "returnByValue": true}, &res)
			// Until the page has loaded, the probe may see about:blank or nothing.
			seen.Members, seen.Masters, seen.Results = 0, 0, 0
			_ = json.Unmarshal([]byte(res.Result.Value), &seen)
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: page shows %d members, %d masters, %d results", what, seen.Members, seen.Masters, seen.Results)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor(20*time.Second, "3 members, 1 master, 3 results", func() bool {
		return seen.Members == 3 && seen.Masters == 1 && seen.Results >= 3
	})
	t.Logf("page shows %d members, %d master, %d results, %s after Chromium started",
		seen.Members, seen.Masters, seen.Results, time.Since(started).Round(time.Millisecond))

	// Let a few more results arrive so the picture is representative.
	time.Sleep(1500 * time.Millisecond)
	var shot struct{ Data string }
	b.call(page, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 20_000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG of a drawn page: %d bytes", len(png))
	}
	file := filepath.Join(artifactsDir(t), "live-page.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", file, len(png))

	// kill -9 of another node shows on the page within the TTL (3s, plus
	// the page's 1s poll and some slack).
	killed := time.Now()
	procs[2].signal(syscall.SIGKILL)
	waitFor(3*time.Second+2*time.Second, "2 members after kill -9", func() bool { return seen.Members == 2 && seen.Masters == 1 })
	t.Logf("kill -9 of %s shown on the page after %s (ttl 3s)", ips[2], time.Since(killed).Round(time.Millisecond))
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("MESHPOOL_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is a headless Chromium driven over the DevTools pipe. It is killed
// at cleanup and cannot outlive 60 s.
type browser struct {
	t    *testing.T
	w    *os.File
	r    *bufio.Reader
	next int
}

func startChromium(t *testing.T, path string) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmdR, cmdW, err := os.Pipe() // we write commands, Chromium reads fd 3
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe() // Chromium writes answers on fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, path, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--hide-scrollbars", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	cmdR.Close()
	outW.Close()
	t.Cleanup(func() {
		cmdW.Close()
		cancel() // kills Chromium
		_ = cmd.Wait()
		outR.Close()
		if t.Failed() {
			t.Logf("--- chromium stderr ---\n%s", tail(stderr.String(), 20))
		}
	})
	return &browser{t: t, w: cmdW, r: bufio.NewReader(outR)}
}

// call sends one command (on a page session, or the browser when session is
// "") and decodes its result into out, skipping the events in between.
func (b *browser) call(session, method string, params any, out any) {
	b.t.Helper()
	b.next++
	req := map[string]any{"id": b.next, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	msg, _ := json.Marshal(req)
	if _, err := b.w.Write(append(msg, 0)); err != nil {
		b.t.Fatalf("chromium %s: %v", method, err)
	}
	for {
		line, err := b.r.ReadBytes(0)
		if err != nil {
			b.t.Fatalf("chromium %s: %v", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line[:len(line)-1], &resp); err != nil {
			b.t.Fatalf("chromium %s: bad answer: %v", method, err)
		}
		if resp.ID != b.next {
			continue // an event
		}
		if resp.Error != nil {
			b.t.Fatalf("chromium %s: %s", method, resp.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(resp.Result, out); err != nil {
				b.t.Fatalf("chromium %s: %v", method, err)
			}
		}
		return
	}
}

// open loads url in a new width×height page and returns its session.
func (b *browser) open(url string, width, height int) string {
	b.t.Helper()
	var target struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	s := attached.SessionID
	b.call(s, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	var nav struct{ ErrorText string }
	b.call(s, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		b.t.Fatalf("chromium: cannot load %s: %s", url, nav.ErrorText)
	}
	return s
}
