package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/message"
)

// An answer is read at most message.MaxSize bytes long (the embedded NATS
// server carries no larger, so only a unit test can send one).
func TestDecodeAnswerBoundsTheSize(t *testing.T) {
	big := `{"tasks":[],"pad":"` + strings.Repeat("x", message.MaxSize) + `"}`
	if _, _, err := decodeAnswer[message.ListReply]([]byte(big)); !errors.Is(err, message.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	reply, st, err := decodeAnswer[message.ListReply]([]byte(`{"tasks":[{"uuid":"a"}],"error":"busy","temporary":true}`))
	if err != nil || len(reply.Tasks) != 1 || st.Error != "busy" || !st.Temporary {
		t.Fatalf("decodeAnswer = %+v, %+v, %v", reply, st, err)
	}
}

// userInbox gives a user's connection its own inbox prefix, by name or by
// public nkey, and leaves one the options chose, or no user's, as it is.
func TestUserInbox(t *testing.T) {
	for _, tt := range []struct {
		o    nats.Options
		want string
	}{
		{nats.Options{User: "alice"}, "_INBOX.alice"},
		{nats.Options{Nkey: "UABC"}, "_INBOX.UABC"},
		{nats.Options{Servers: []string{"nats://bob:pw@127.0.0.1:4222"}}, "_INBOX.bob"},
		{nats.Options{User: "alice", InboxPrefix: "_MINE"}, "_MINE"},
		{nats.Options{}, ""},
	} {
		if err := userInbox(&tt.o); err != nil || tt.o.InboxPrefix != tt.want {
			t.Errorf("%+v: prefix %q, %v; want %q", tt.o, tt.o.InboxPrefix, err, tt.want)
		}
	}
}
