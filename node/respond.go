package node

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/internal/ratelog"
	"github.com/meshpool/meshpool/message"
)

// respond answers a request with v as JSON; a message sent without a reply
// subject, or with one of meshpool's own subjects as its reply subject, is
// not answered. A failure is logged at level: the requester times out and
// tries again or elsewhere.
func respond(msg *nats.Msg, v any, log *slog.Logger, level slog.Level) {
	if msg.Reply == "" {
		return
	}
	if message.OwnSubject(msg.Reply) {
		log.Debug("not answered: the reply subject is one of meshpool's own", "subject", msg.Subject, "reply", ratelog.Truncate(msg.Reply))
		return
	}
	body, err := encodeJSON(v)
	if err != nil {
		log.Error("cannot encode reply", "subject", msg.Subject, "err", err)
		return
	}
	if err := msg.Respond(body); err != nil {
		log.Log(context.Background(), level, "cannot send reply", "subject", msg.Subject, "err", err)
	}
}

// encodeJSON encodes v with its own AppendJSON when it has one (the
// messages sent for every task), else with encoding/json.
func encodeJSON(v any) ([]byte, error) {
	if a, ok := v.(interface{ AppendJSON([]byte) []byte }); ok {
		return a.AppendJSON(make([]byte, 0, 256)), nil
	}
	return json.Marshal(v)
}
