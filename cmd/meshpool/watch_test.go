package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

func TestWatchJSONKeepsStdoutJSON(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Name, cfg.Host, cfg.ClientPort, cfg.ClusterPort = "watch", "127.0.0.7", broker.RandomPort, broker.RandomPort
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	var stdout, stderr testutil.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	watch := testutil.Go(t, func(ctx context.Context) error {
		return m.Run(ctx, []string{"watch", "--server", b.ClientURL(), "--json"})
	})
	defer func() {
		if err := watch.Stop(); err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	testutil.Eventually(t, 10*time.Second, "watch subscribed", func() bool { return strings.Contains(stderr.String(), "watching") })

	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	now := message.NewTimestamp(time.Now())
	good := func(n int64) []byte {
		body, err := json.Marshal(message.Result{UUID: uuid.NewString(), Executor: "w-00000000", Number: n, Kind: message.KindTriple, Result: message.TripleResult(n), Start: now, Finish: now, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	for _, p := range []struct {
		subject string
		body    []byte
	}{
		{message.SubjectResults, good(1)},
		{message.SubjectResults, []byte("not json")},
		{message.SubjectEvents, []byte(`{"kind":`)},
		{message.SubjectResults, good(2)},
	} {
		if err := nc.Publish(p.subject, p.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "two results on stdout", func() bool { return strings.Count(stdout.String(), "\n") >= 2 })
	testutil.Eventually(t, 10*time.Second, "the malformed messages on stderr", func() bool {
		return strings.Contains(stderr.String(), "malformed result") && strings.Contains(stderr.String(), "malformed event")
	})
	for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		var v struct{ Type string }
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Type != "result" {
			t.Errorf("stdout line %q is not a JSON result (%v)", l, err)
		}
	}
}
