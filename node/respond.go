package node

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/nats-io/nats.go"
)

// respond answers a request with v as JSON; a message sent without a reply
// subject is not answered. A failure is logged at level: the requester times
// out and tries again or elsewhere.
func respond(msg *nats.Msg, v any, log *slog.Logger, level slog.Level) {
	if msg.Reply == "" {
		return
	}
	body, err := json.Marshal(v)
	if err != nil {
		log.Error("cannot encode reply", "subject", msg.Subject, "err", err)
		return
	}
	if err := msg.Respond(body); err != nil {
		log.Log(context.Background(), level, "cannot send reply", "subject", msg.Subject, "err", err)
	}
}
