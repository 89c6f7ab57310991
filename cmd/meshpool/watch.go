package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

func (m *Main) runWatch(ctx context.Context, args []string) error {
	server := "nats://127.0.0.1:4222"
	asJSON := false
	fs := newFlagSet("watch", "Follows results and cluster events (promotions, members joining and leaving) as readable lines;\nthe pretty twin of 'nats sub results'. Ctrl-C stops.", m.Stdout)
	fs.StringVar(&server, "server", server, "NATS URL of any node")
	fs.BoolVar(&asJSON, "json", false, "print each result and event as one JSON object per line")
	var natsSec natsClientFlags
	natsSec.bind(fs)
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	if err := checkServer(server); err != nil {
		return usagef("watch: %w", err)
	}
	natsOpts, err := natsSec.options()
	if err != nil {
		return usagef("watch: %w", err)
	}
	nc, err := nats.Connect(server, append(natsOpts, nats.Name("meshpool watch"), nats.MaxReconnects(-1),
		// An observer may read results only: say so for events, go on.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { fmt.Fprintf(m.Stderr, "watch: %v\n", err) }))...)
	if err != nil {
		return fmt.Errorf("watch: cannot connect to %s: %w", server, err)
	}
	defer nc.Close()
	w := &watcher{out: m.Stdout, errOut: m.Stderr, json: asJSON}
	for _, subject := range []string{message.SubjectResults, message.SubjectEvents} {
		if _, err := nc.Subscribe(subject, w.show); err != nil {
			return fmt.Errorf("watch: cannot subscribe to %s: %w", subject, err)
		}
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	fmt.Fprintf(m.Stderr, "watching results and events on %s\n", server)
	<-ctx.Done()
	return nil
}

// watcher prints what it receives, one line per message, in arrival order.
// A message that does not decode is reported on errOut, in both modes, so
// that out holds only results and events (with --json, only JSON lines).
type watcher struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	json   bool
}

func (w *watcher) show(msg *nats.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch msg.Subject {
	case message.SubjectResults:
		r, err := message.DecodeResult(msg.Data)
		if err != nil {
			fmt.Fprintf(w.errOut, "watch: malformed result: %v\n", err)
			return
		}
		if w.json {
			w.printJSON(map[string]any{"type": "result", "result": r})
			return
		}
		fmt.Fprintf(w.out, "%s result  %s  %d*3 = %d  by %s  in %s  (term %d)\n",
			r.Finish.Format("15:04:05.000"), r.UUID, r.Number, r.Result, r.Executor, r.Finish.Sub(r.Start.Time), r.Term)
	case message.SubjectEvents:
		e, err := message.DecodeEvent(msg.Data)
		if err != nil {
			fmt.Fprintf(w.errOut, "watch: malformed event: %v\n", err)
			return
		}
		if w.json {
			w.printJSON(map[string]any{"type": "event", "event": e})
			return
		}
		switch e.Kind {
		case message.EventPromoted:
			fmt.Fprintf(w.out, "%s master  %s promoted (term %d)\n", e.Time.Format("15:04:05.000"), e.Node, e.Term)
		default:
			fmt.Fprintf(w.out, "%s member  %s %s (%s)\n", e.Time.Format("15:04:05.000"), e.Node, e.Kind, e.IP)
		}
	}
}

func (w *watcher) printJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(w.out, "%s\n", b)
}
