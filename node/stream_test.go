package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// sse is one server-sent event read from /stream.
type sse struct{ event, data string }

// openStream reads n's /stream until the test ends.
func openStream(t *testing.T, n *node.Node) <-chan sse {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Status().HTTPURL+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /stream: %d", resp.StatusCode)
	}
	out := make(chan sse, 1024)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var cur sse
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "event: "):
				cur.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				cur.data += strings.TrimPrefix(line, "data: ")
			case line == "" && cur.event != "":
				select {
				case out <- cur:
				case <-ctx.Done():
					return
				}
				cur = sse{}
			}
		}
	}()
	return out
}

// Garbage on events and results never reaches a /stream reader, and is
// counted; a real event right behind it does reach it.
func TestStreamRelaysOnlyValidEventsAndResults(t *testing.T) {
	c := durable(t, nil)
	_, workers := c.startN(2)
	n := workers[0]
	stream := openStream(t, n)
	pub, err := nats.Connect(clientURL(t, n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)

	garbage := [][]byte{
		[]byte("garbage, not json"),
		[]byte(`{"kind":"joined","node":"garbage"}`),
		[]byte(`{"kind":"garbage","node":"a","by":"b","time":"2026-01-01T00:00:00.000Z","term":1}`),
		[]byte(`<script>alert("garbage")</script>`),
		[]byte(`{"uuid":"garbage","result":42}`),
		[]byte(`{"kind":"joined","node":"x","by":"y","time":"2026-01-01T00:00:00.000Z","term":1,"extra":"garbage"}` + "\n" + `garbage`),
		[]byte(strings.Repeat("garbage", 2000)),
	}
	var seen []sse
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no real event reached /stream; it read %d events", len(seen))
		}
		for _, g := range garbage {
			for _, subject := range []string{message.SubjectEvents, message.SubjectResults} {
				if err := pub.Publish(subject, g); err != nil {
					t.Fatal(err)
				}
			}
		}
		marker := fmt.Sprintf("marker-%d", i)
		real, err := json.Marshal(message.NewEvent(message.EventJoined, marker, "127.0.0.9", "tester", 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(message.SubjectEvents, real); err != nil {
			t.Fatal(err)
		}
		found := false
		wait := time.After(500 * time.Millisecond)
	read:
		for {
			select {
			case e := <-stream:
				seen = append(seen, e)
				if e.event == "event" && strings.Contains(e.data, `"node":"`+marker+`"`) {
					found = true
					break read
				}
			case <-wait:
				break read
			}
		}
		if found {
			break
		}
	}
	for _, e := range seen {
		if strings.Contains(e.data, "garbage") {
			t.Errorf("garbage reached /stream: %s %.100q", e.event, e.data)
		}
		var err error
		switch e.event {
		case "event":
			_, err = message.DecodeEvent([]byte(e.data))
		case "result":
			_, err = message.DecodeResult([]byte(e.data))
		default:
			err = fmt.Errorf("unknown kind")
		}
		if err != nil {
			t.Errorf("/stream relayed an invalid %s: %v", e.event, err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the refusals counted in /status and /metrics", func() bool {
		m, _ := scrape(t, n)
		return n.Status().StreamRefused >= int64(2*len(garbage)) && m["meshpool_stream_refused_total"] >= float64(2*len(garbage))
	})
}
