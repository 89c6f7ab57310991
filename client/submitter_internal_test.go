package client

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// A connection with an nkey submits as its public key. (An nkey needs a
// server with nkey users, which only the secure tests start.)
func TestSubmitterOfAnNkey(t *testing.T) {
	const nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	if got := submitter(&nats.Conn{Opts: nats.Options{Nkey: nkey}}); got != nkey {
		t.Fatalf("submitter %q, want the public nkey %s", got, nkey)
	}
	// nats-server knows a client that sends both by its nkey.
	if got := submitter(&nats.Conn{Opts: nats.Options{User: "alice", Nkey: nkey}}); got != nkey {
		t.Fatalf("submitter %q, want the nkey, as the server knows it", got)
	}
	// The inbox is the same user's.
	o := nats.Options{User: "alice", Nkey: nkey}
	if err := userInbox(&o); err != nil || o.InboxPrefix != "_INBOX."+nkey {
		t.Fatalf("inbox prefix %q, %v: want the nkey's", o.InboxPrefix, err)
	}
	o = nats.Options{Servers: []string{"nats://bob:pw@127.0.0.1:4222"}, Nkey: nkey}
	if err := userInbox(&o); err != nil || o.InboxPrefix != "_INBOX.bob" {
		t.Fatalf("inbox prefix %q, %v: want the URL's user's", o.InboxPrefix, err)
	}
}
