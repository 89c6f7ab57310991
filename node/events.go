package node

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
)

// announce publishes cluster events on the events subject while this node
// leads: its promotion, then every member that joins or leaves, as the
// master sees them. `meshpool watch` shows them beside the results.
func announce(ctx context.Context, conn *nats.Conn, self string, l election.Leadership,
	membership func() (registry.Membership, <-chan struct{}), log *slog.Logger) {
	publish := func(e message.Event) {
		body, err := json.Marshal(e)
		if err != nil {
			return
		}
		if err := conn.Publish(message.SubjectEvents, body); err != nil {
			log.Debug("cannot publish event", "kind", e.Kind, "err", err)
		}
	}
	publish(message.NewEvent(message.EventPromoted, self, "", self, l.Term))
	mem, changed := membership()
	known := byID(mem)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		mem, changed = membership()
		now := byID(mem)
		for id, r := range now {
			if _, ok := known[id]; !ok {
				publish(message.NewEvent(message.EventJoined, id, r.IP, self, l.Term))
			}
		}
		for id, r := range known {
			if _, ok := now[id]; !ok {
				publish(message.NewEvent(message.EventLeft, id, r.IP, self, l.Term))
			}
		}
		known = now
	}
}

func byID(m registry.Membership) map[string]registry.Record {
	out := make(map[string]registry.Record, len(m.Members))
	for _, r := range m.Members {
		out[r.ID] = r
	}
	return out
}
