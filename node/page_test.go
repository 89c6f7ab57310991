package node_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPageIsSelfContained(t *testing.T) {
	c := newCluster(t, nil)
	master, _ := c.startN(1)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(master.Status().HTTPURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET /: %d %q, want 200 text/html", resp.StatusCode, ct)
	}
	code, body := httpGet(t, master, "/")
	page := string(body)
	// Its own script and style run, named by hash; no other inline one.
	csp := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		_, rest, _ := strings.Cut(page, "<"+tag+">")
		content, _, _ := strings.Cut(rest, "</"+tag+">")
		sum := sha256.Sum256([]byte(content))
		if want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q, want %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
	}
	if code != http.StatusOK || !strings.Contains(page, "data-member") {
		t.Fatalf("GET /: %d, %.200s", code, page)
	}
	// No external assets: no absolute URL, no protocol-relative src or href.
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|(src|href)\s*=\s*["']//`).FindString(page); m != "" {
		t.Errorf("page refers to another host: %q", m)
	}
	for _, secret := range []string{"password", "secret", "token", "BEGIN ", "etcd", c.cfg.Etcd[0]} {
		if strings.Contains(strings.ToLower(page), strings.ToLower(secret)) {
			t.Errorf("page contains %q", secret)
		}
	}
	// Other paths are not shadowed by /.
	if code, _ := httpGet(t, master, "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", code)
	}
}

func TestStreamDeliversResults(t *testing.T) {
	c := newCluster(t, nil)
	master, _ := c.startN(3)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, master.Status().HTTPURL+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET /stream: %d %q", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() != "event: result" {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), `data: {"v":1,"uuid":`) {
			t.Fatalf("event: result followed by %q", sc.Text())
		}
		return // the deferred Close ends the stream; goleak checks its handler ended
	}
	t.Fatalf("no result on /stream: %v", sc.Err())
}
