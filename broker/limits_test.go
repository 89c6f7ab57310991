package broker_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/nats-io/nats.go"
)

// startLimited starts a broker on ipA with random ports and the limits mod
// sets, closed at cleanup.
func startLimited(t *testing.T, mod func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Name, cfg.Host = "a", ipA
	cfg.ClientPort, cfg.ClusterPort = broker.RandomPort, broker.RandomPort
	mod(&cfg)
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// dialClient connects a client that does not reconnect; errs receives its
// asynchronous errors.
func dialClient(t *testing.T, url string) (*nats.Conn, chan error, error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(url, nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(nc.Close)
	return nc, errs, nil
}

// received reports whether a message published by pub on subject reaches
// msgs within a second.
func received(t *testing.T, pub *nats.Conn, subject string, msgs chan *nats.Msg) bool {
	t.Helper()
	if err := pub.Publish(subject, []byte("ping")); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	check(t, pub.Flush())
	select {
	case m := <-msgs:
		if m.Subject != subject {
			t.Fatalf("received on %s, want %s", m.Subject, subject)
		}
		return true
	case <-time.After(time.Second):
		return false
	}
}

// A client's subscription beyond MaxSubscriptions is refused, and the client
// keeps the ones it has; the node's own connection, under the same limit,
// holds what a node subscribes and more.
func TestMaxSubscriptions(t *testing.T) {
	const limit = 32 // the least Validate takes
	b := startLimited(t, func(c *broker.Config) { c.MaxSubscriptions = limit })
	nc, errs, err := dialClient(t, b.ClientURL())
	check(t, err)
	msgs := make(chan *nats.Msg, 64)
	for i := range limit + 1 {
		_, err := nc.ChanSubscribe(fmt.Sprintf("s.%d", i), msgs)
		check(t, err)
	}
	check(t, nc.Flush())
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrMaxSubscriptionsExceeded) {
			t.Fatalf("error %v, want %v", err, nats.ErrMaxSubscriptionsExceeded)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("subscription %d of a connection limited to %d: no error", limit+1, limit)
	}
	if !nc.IsConnected() {
		t.Fatal("the client was disconnected; want only the subscription refused")
	}
	if !received(t, b.Conn(), fmt.Sprintf("s.%d", limit-1), msgs) {
		t.Fatalf("subscription %d within the limit receives nothing", limit)
	}
	if received(t, b.Conn(), fmt.Sprintf("s.%d", limit), msgs) {
		t.Fatalf("subscription %d beyond the limit receives", limit+1)
	}

	// The node's own connection: more than a master, a worker and the
	// page's streams subscribe, and a request inbox.
	own := make(chan *nats.Msg, 64)
	for i := range 24 {
		sub, err := b.Conn().ChanSubscribe(fmt.Sprintf("node.%d", i), own)
		check(t, err)
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	check(t, b.Conn().Flush())
	for i := range 24 {
		if !received(t, nc, fmt.Sprintf("node.%d", i), own) {
			t.Fatalf("the node's own subscription %d receives nothing", i+1)
		}
	}
	responder, _, err := dialClient(t, b.ClientURL())
	check(t, err)
	_, err = responder.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	check(t, err)
	check(t, responder.Flush())
	if _, err := b.Conn().Request("echo", []byte("x"), 3*time.Second); err != nil {
		t.Fatalf("the node's own request (its inbox one more subscription): %v", err)
	}
}

// A client connection beyond MaxConnections is refused, the node's own
// counting; one that closes makes room.
func TestMaxConnections(t *testing.T) {
	b := startLimited(t, func(c *broker.Config) { c.MaxConnections = 3 })
	first, _, err := dialClient(t, b.ClientURL()) // the node's own is the other
	check(t, err)
	_, _, err = dialClient(t, b.ClientURL())
	check(t, err)
	// The server answers "maximum connections exceeded" and closes the
	// connection at once: the client sees that or its write failing.
	if _, _, err = dialClient(t, b.ClientURL()); err == nil {
		t.Fatal("connection 4 of 3 accepted")
	}
	if n := b.Server().NumClients(); n != 3 {
		t.Fatalf("the server holds %d client connections, want 3", n)
	}
	check(t, b.Conn().Flush()) // the node's own still works
	first.Close()
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		_, _, err := dialClient(t, b.ClientURL())
		return err
	})
}
