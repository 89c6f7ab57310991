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
	if got := submitter(&nats.Conn{Opts: nats.Options{User: "alice", Nkey: nkey}}); got != "alice" {
		t.Fatalf("submitter %q, want the user alice", got)
	}
}
