package client_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// TestRequestsAnswerToTheUsersOwnInboxes: a client logged in as a user asks
// with reply subjects under _INBOX.<user>., the only inboxes a secure
// cluster lets it read.
func TestRequestsAnswerToTheUsersOwnInboxes(t *testing.T) {
	b := startNATS(t)
	replies := make(chan string, 1)
	answer(t, b, message.SubjectGet, func([]byte) any { return message.TaskInfo{UUID: taskID, State: message.StateDone} })
	if _, err := b.Conn().Subscribe(message.SubjectGet, func(m *nats.Msg) {
		select {
		case replies <- m.Reply:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(b.ClientURL(), nats.UserInfo("alice", "any: this server asks for no credentials"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(t.Context(), taskID); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-replies:
		if !strings.HasPrefix(r, message.InboxPrefix("alice")+".") {
			t.Fatalf("reply subject %q, want it under %s.", r, message.InboxPrefix("alice"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no request seen")
	}
}
