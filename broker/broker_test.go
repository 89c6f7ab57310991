package broker_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/nats-io/nats.go"
)

func TestConfigValidate(t *testing.T) {
	valid := func(mod func(*broker.Config)) broker.Config {
		c := broker.DefaultConfig()
		c.Name = "a"
		c.Host = ipA
		mod(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     broker.Config
		wantErr string // "" = valid
	}{
		{"defaults", valid(func(*broker.Config) {}), ""},
		{"zero ports mean defaults", valid(func(c *broker.Config) { c.ClientPort, c.ClusterPort = 0, 0 }), ""},
		{"random ports", valid(func(c *broker.Config) { c.ClientPort, c.ClusterPort = -1, -1 }), ""},
		{"ipv6 host", valid(func(c *broker.Config) { c.Host = "::1" }), ""},
		{"empty name", valid(func(c *broker.Config) { c.Name = "" }), "name must not be empty"},
		{"host not an IP", valid(func(c *broker.Config) { c.Host = "x" }), `host must be an IP address, got "x"`},
		{"host name", valid(func(c *broker.Config) { c.Host = "localhost" }), `host must be an IP address, got "localhost"`},
		{"empty host", valid(func(c *broker.Config) { c.Host = "" }), `host must be an IP address, got ""`},
		{"unspecified host", valid(func(c *broker.Config) { c.Host = "0.0.0.0" }), "specific IP address"},
		{"client port too big", valid(func(c *broker.Config) { c.ClientPort = 65536 }), "client port must be between"},
		{"client port below -1", valid(func(c *broker.Config) { c.ClientPort = -2 }), "client port must be between"},
		{"cluster port too big", valid(func(c *broker.Config) { c.ClusterPort = 70000 }), "cluster port must be between"},
		{"same ports", valid(func(c *broker.Config) { c.ClientPort, c.ClusterPort = 5000, 5000 }), "must differ"},
		{"same as default port", valid(func(c *broker.Config) { c.ClientPort, c.ClusterPort = 6222, 0 }), "must differ"},
		{"limits", valid(func(c *broker.Config) { c.MaxConnections, c.MaxSubscriptions, c.MaxPending = 1, 32, 1 }), ""},
		{"negative max connections", valid(func(c *broker.Config) { c.MaxConnections = -1 }), "max connections -1"},
		{"max subscriptions below a node's", valid(func(c *broker.Config) { c.MaxSubscriptions = 31 }), "at least 32"},
		{"negative max subscriptions", valid(func(c *broker.Config) { c.MaxSubscriptions = -1 }), "max subscriptions -1"},
		{"negative max pending", valid(func(c *broker.Config) { c.MaxPending = -1 }), "max pending -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, broker.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
			if _, err := broker.Start(tt.cfg); !errors.Is(err, broker.ErrInvalidConfig) {
				t.Fatalf("Start() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestStart(t *testing.T) {
	rec := &logRecorder{}
	b := startBroker(t, "a", ipA, slog.New(rec))

	for _, u := range []struct{ got, scheme string }{{b.ClientURL(), "nats"}, {b.ClusterURL(), "nats-route"}} {
		pu, err := url.Parse(u.got)
		if err != nil || pu.Scheme != u.scheme || pu.Hostname() != ipA || pu.Port() == "0" || pu.Port() == "" {
			t.Errorf("URL %q: want %s://%s:<actual port>", u.got, u.scheme, ipA)
		}
	}
	if got := b.Server().Name(); got != "a" {
		t.Errorf("server name = %q, want a", got)
	}
	if got := b.Server().ClusterName(); got != broker.DefaultClusterName {
		t.Errorf("cluster name = %q, want %q", got, broker.DefaultClusterName)
	}
	if !b.Conn().IsConnected() || b.Conn().ConnectedServerId() != b.Server().ID() {
		t.Errorf("Conn() not connected to its own server")
	}
	clusterHostPort := strings.TrimPrefix(b.ClusterURL(), "nats-route://")
	if len(rec.matching("Listening for route connections on "+clusterHostPort)) != 1 {
		t.Errorf("nats-server log lines do not reach the slog logger")
	}

	// A TCP client reaches the advertised client URL.
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("connect to ClientURL: %v", err)
	}
	defer nc.Close()
	if got := nc.ConnectedServerName(); got != "a" {
		t.Errorf("TCP client connected to %q, want a", got)
	}
}

func TestStartPortInUse(t *testing.T) {
	for _, which := range []string{"client", "cluster"} {
		t.Run(which, func(t *testing.T) {
			ln, err := net.Listen("tcp", net.JoinHostPort(ipA, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port

			cfg := broker.Config{Name: "a", Host: ipA, ClientPort: broker.RandomPort, ClusterPort: broker.RandomPort}
			if which == "client" {
				cfg.ClientPort = port
			} else {
				cfg.ClusterPort = port
			}
			start := time.Now()
			b, err := broker.Start(cfg)
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded on a port in use")
			}
			if !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("error %q does not say the address is in use", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Start took %s to fail, want well under the readiness timeout", d)
			}
		})
	}
}

func TestMesh(t *testing.T) {
	nodes := mesh(t, "a", "b", "c") // waits until each routes to exactly the other two
	a, b, c := nodes[0].b, nodes[1].b, nodes[2].b

	t.Run("publish reaches a subscriber on another node", func(t *testing.T) {
		msgs := make(chan *nats.Msg, 64)
		sub, err := c.Conn().ChanSubscribe("greetings", msgs)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := c.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		// Interest crosses the route asynchronously: publish until it arrives.
		testutil.EventuallyNil(t, 5*time.Second, func() error { return publishUntilReceived(a.Conn(), "greetings", "hello from a", msgs) })
	})

	t.Run("request reply across a route", func(t *testing.T) {
		sub, err := b.Conn().Subscribe("echo", func(m *nats.Msg) { m.Respond(append([]byte("b:"), m.Data...)) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := b.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		var reply *nats.Msg
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			reply, err = a.Conn().Request("echo", []byte("ping"), 500*time.Millisecond)
			return err
		})
		if string(reply.Data) != "b:ping" {
			t.Errorf("reply = %q, want b:ping", reply.Data)
		}
	})

	t.Run("no responders fails fast", func(t *testing.T) {
		start := time.Now()
		_, err := a.Conn().Request("nobody.listens", nil, 5*time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("Request = %v, want ErrNoResponders", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("no-responders took %s, want far below the 5s timeout", d)
		}
	})

	t.Run("clients discover the other nodes' advertised client URLs", func(t *testing.T) {
		nc, err := nats.Connect(a.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		want := []string{b.ClientURL(), c.ClientURL()}
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			if got := nc.DiscoveredServers(); !slices.Contains(got, want[0]) || !slices.Contains(got, want[1]) {
				return fmt.Errorf("DiscoveredServers() = %v, want %v (advertised with the actual ports)", got, want)
			}
			return nil
		})
	})
}

// TestRemovedPeer checks that a peer removed with SetPeers and stopped is
// dropped, and that nothing keeps dialling its address.
//
// The observable is nats-server's own debug line "Trying to connect to route
// on <addr>", logged right before every route dial (route.go:2968) and
// recorded through the broker's logger. A peer that dies while configured
// is dialled one second after its connections drop and every second after
// that (the control case). A removed one may see a single dial per
// gossip-learned connection within milliseconds of its death (implicit
// routes retry once, client.go:6485 and route.go:2980), but none after.
//
// Routes() may still list the stopped peer for a moment during the window,
// and that is not a route coming back: a route connection the peer set up
// before it stopped still has the peer's INFO in the socket buffer. The
// survivor registers the route when it reads that INFO (route.go:894,
// addRoute checks only that the survivor itself runs, route.go:2152), which
// under load can be well after waitRoutes, and drops it at its next read,
// which sees the close (client.go:1566). So the routes are checked once the
// window is over: nothing may keep or re-establish a route to the peer.
func TestRemovedPeer(t *testing.T) {
	const (
		// Dials that start within this time of the routes dropping are
		// the one-shot retries of implicit routes (random delay < 100ms).
		grace = 500 * time.Millisecond
		// Explicit routes are retried every second: watch more than two
		// retry periods after the grace.
		window = 2500 * time.Millisecond
	)
	tests := []struct {
		name        string
		removeFirst bool // SetPeers without c before c closes (clean exit)
		keep        bool // control: a and b keep c as a peer
	}{
		{name: "removed then closed", removeFirst: true},
		{name: "closed then removed"},
		{name: "control: closed but kept", keep: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := mesh(t, "a", "b", "c")
			ab, c := nodes[:2], nodes[2]
			dialsToC := "Trying to connect to route on " + strings.TrimPrefix(c.b.ClusterURL(), "nats-route://")

			remove := func() {
				for _, n := range ab {
					if err := n.b.SetPeers(clusterURLs(ab, n.name)); err != nil {
						t.Fatalf("%s.SetPeers: %v", n.name, err)
					}
				}
			}
			if tt.removeFirst {
				remove()
			}
			c.b.Close()
			if !tt.removeFirst && !tt.keep {
				remove()
			}
			waitRoutes(t, ab[0], "b")
			waitRoutes(t, ab[1], "a")
			since := time.Now().Add(grace)
			dials := func() []string {
				return append(ab[0].log.matchingSince(dialsToC, since), ab[1].log.matchingSince(dialsToC, since)...)
			}

			if tt.keep {
				testutil.EventuallyNil(t, grace+window, func() error {
					if got := dials(); len(got) < 2 {
						return fmt.Errorf("%d dials to a configured dead peer, want repeated dials: the observable is blind", len(got))
					}
					return nil
				})
				return
			}
			testutil.ConsistentlyNil(t, grace+window, func() error {
				if got := dials(); len(got) > 0 {
					return fmt.Errorf("still dialling the removed peer: %q", got)
				}
				return nil
			})
			for _, n := range ab {
				if got := n.b.Routes(); slices.Contains(got, "c") {
					t.Fatalf("%s still routes to the removed peer after %s: %v", n.name, grace+window, got)
				}
			}
			// The remaining pair still routes messages.
			sub, err := ab[1].b.Conn().Subscribe("still.there", func(m *nats.Msg) { m.Respond(nil) })
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			testutil.EventuallyNil(t, 5*time.Second, func() error {
				_, err := ab[0].b.Conn().Request("still.there", nil, 200*time.Millisecond)
				return err
			})
		})
	}
}

// TestRemovingLivePeerClosesAllItsRoutes checks that SetPeers closes every
// route connection with a removed peer at once, including the ones the
// peer dialled and the ones learned by gossip. nats-server closes only the
// connections whose URL equals a removed route URL (reload.go:515-547,
// reflect.DeepEqual); the URLs it builds for accepted and gossiped routes
// end in "/" (route.go:847-857, route.go:2870), so SetPeers must use that
// form too. The peer stays alive and will dial again about a second later
// (routes are not an allow-list), so this looks right after SetPeers.
func TestRemovingLivePeerClosesAllItsRoutes(t *testing.T) {
	nodes := mesh(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	for round := range 3 {
		// Wait until the route pools are complete, so that no connection
		// with c is still being set up while a removes it.
		testutil.EventuallyNil(t, 10*time.Second, func() error {
			for _, n := range nodes {
				for _, p := range names(nodes, n.name) {
					if got := routeConns(n, p); got != fullPool {
						return fmt.Errorf("round %d: %s has %d route connections with %s, want %d", round, n.name, got, p, fullPool)
					}
				}
			}
			return nil
		})
		if err := a.b.SetPeers([]string{b.b.ClusterURL()}); err != nil {
			t.Fatal(err)
		}
		if got := routeConns(a, "c"); got != 0 {
			t.Fatalf("round %d: %d route connections with c right after removing it, want 0", round, got)
		}
		if err := a.b.SetPeers([]string{b.b.ClusterURL(), c.b.ClusterURL()}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetPeersUnchangedIsNoop(t *testing.T) {
	a, b, c := startNode(t, "a", ipA), startNode(t, "b", ipB), startNode(t, "c", ipC)
	rec := a.log
	connectAll(t, []node{a, b})

	srv := a.b.Server()
	serverID, configTime := srv.ID(), srv.ConfigTime()
	var disconnects atomic.Int32
	a.b.Conn().SetDisconnectErrHandler(func(*nats.Conn, error) { disconnects.Add(1) })
	reloads := len(rec.matching("Reloaded"))

	bURL := b.b.ClusterURL()
	same := []struct {
		name  string
		peers []string
	}{
		{"identical", []string{bURL}},
		{"with own URL", []string{a.b.ClusterURL(), bURL}},
		{"duplicates", []string{bURL, bURL, bURL}},
		{"trailing slash", []string{bURL + "/"}},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.b.SetPeers(tt.peers); err != nil {
				t.Fatalf("SetPeers: %v", err)
			}
			if got := srv.ConfigTime(); !got.Equal(configTime) {
				t.Errorf("ConfigTime moved from %v to %v: the server was reloaded", configTime, got)
			}
			if got := len(rec.matching("Reloaded")); got != reloads {
				t.Errorf("%d new reload log lines", got-reloads)
			}
		})
	}

	t.Run("a change reloads only the routes", func(t *testing.T) {
		before := len(rec.lines())
		// Order-insensitive: c first.
		if err := a.b.SetPeers([]string{c.b.ClusterURL(), bURL}); err != nil {
			t.Fatalf("SetPeers: %v", err)
		}
		if srv.ConfigTime().Equal(configTime) {
			t.Errorf("ConfigTime unchanged after a real change: the observable above proves nothing")
		}
		waitRoutes(t, a, "b", "c")

		// nats-server logs "Reloaded: <option>" per changed option. It always
		// counts "users" and "accounts" as changed (reload.go:1651-1654:
		// they are never compared), so those two appear on every reload;
		// anything else means the cloned template differs from the running
		// options in more than Routes.
		allowed := map[string]bool{
			"Reloaded: cluster routes":      true,
			"Reloaded: authorization users": true, // always, see above
			"Reloaded: accounts":            true, // always, see above
		}
		var routeReloads int
		for _, l := range rec.lines()[before:] {
			if !strings.HasPrefix(l, "Reloaded: ") {
				continue
			}
			if !allowed[l] {
				t.Errorf("reload changed more than the routes: %q", l)
			}
			if l == "Reloaded: cluster routes" {
				routeReloads++
			}
		}
		if routeReloads != 1 {
			t.Errorf("%d routes reloads logged, want 1", routeReloads)
		}
	})

	if srv.ID() != serverID || a.b.Conn().ConnectedServerId() != serverID {
		t.Errorf("server restarted: ID %s, client connected to %s, want %s", srv.ID(), a.b.Conn().ConnectedServerId(), serverID)
	}
	if n := disconnects.Load(); n != 0 || a.b.Conn().Stats().Reconnects != 0 || !a.b.Conn().IsConnected() {
		t.Errorf("client connection interrupted: %d disconnects, %d reconnects", n, a.b.Conn().Stats().Reconnects)
	}
}

func TestLateJoiner(t *testing.T) {
	nodes := mesh(t, "a", "b", "c")
	d := startNode(t, "d", ipD)
	all := append(nodes, d)

	// d knows only a; b and c learn d from a by gossip and dial d's
	// advertised cluster address, which must carry the actual random port.
	if err := d.b.SetPeers([]string{nodes[0].b.ClusterURL()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		waitRoutes(t, n, names(all, n.name)...)
	}

	// Now every node is told the full membership, as node/ does.
	connectAll(t, all)

	msgs := make(chan *nats.Msg, 64)
	sub, err := d.b.Conn().ChanSubscribe("late", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := d.b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		testutil.EventuallyNil(t, 5*time.Second, func() error { return publishUntilReceived(n.b.Conn(), "late", n.name, msgs) })
	}
}

func TestSetPeersInvalid(t *testing.T) {
	b := startBroker(t, "a", ipA, nil)
	for _, raw := range []string{
		"http://127.0.0.3:6222",
		"nats-route://127.0.0.3",
		"nats-route://127.0.0.3:0",
		"nats-route://user:pass@127.0.0.3:6222",
		"nats-route://127.0.0.3:6222/path",
		"nats-route:127.0.0.3:6222",
		"nats-route://bad host:6222",
		"nats-route://[fe80::1%25eth0]:6222",
		"127.0.0.3:6222",
		"",
	} {
		t.Run(raw, func(t *testing.T) {
			err := b.SetPeers([]string{"nats-route://127.0.0.3:6222", raw})
			if !errors.Is(err, broker.ErrInvalidPeer) {
				t.Fatalf("SetPeers(%q) = %v, want ErrInvalidPeer", raw, err)
			}
		})
	}
	// The error quotes at most 200 bytes of a huge URL.
	err := b.SetPeers([]string{"nats-route://" + strings.Repeat("h", 100_000)})
	if !errors.Is(err, broker.ErrInvalidPeer) || len(err.Error()) > 400 {
		t.Errorf("SetPeers(100 KB URL) = %d bytes of error, want ErrInvalidPeer in at most 400", len(fmt.Sprint(err)))
	}
}

// One URL that does not parse is skipped: the broker still routes to the
// good ones, and the error names the bad one.
func TestSetPeersSkipsInvalidURL(t *testing.T) {
	nodes := []node{startNode(t, "a", ipA), startNode(t, "b", ipB), startNode(t, "c", ipC)}
	const bad = "nats-route://127.0.0.9:port"
	for _, n := range nodes {
		urls := append(clusterURLs(nodes, n.name), bad)
		err := n.b.SetPeers(urls)
		if !errors.Is(err, broker.ErrInvalidPeer) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s.SetPeers(%q) = %v, want ErrInvalidPeer naming %s", n.name, urls, err, bad)
		}
	}
	for _, n := range nodes {
		waitRoutes(t, n, names(nodes, n.name)...)
	}
	// The same set again changes nothing; a nats:// URL is taken as a route.
	configTime := nodes[0].b.Server().ConfigTime()
	if err := nodes[0].b.SetPeers(append(clusterURLs(nodes, "a"), bad)); !errors.Is(err, broker.ErrInvalidPeer) {
		t.Fatalf("SetPeers = %v, want ErrInvalidPeer", err)
	}
	if !nodes[0].b.Server().ConfigTime().Equal(configTime) {
		t.Error("the same peers and bad URL reloaded the routes")
	}
	natsURLs := []string{strings.Replace(nodes[1].b.ClusterURL(), "nats-route://", "nats://", 1), nodes[2].b.ClusterURL()}
	if err := nodes[0].b.SetPeers(natsURLs); err != nil {
		t.Fatalf("SetPeers(%q) = %v", natsURLs, err)
	}
	if !nodes[0].b.Server().ConfigTime().Equal(configTime) {
		t.Error("nats:// for nats-route:// reloaded the routes")
	}
}

func TestClose(t *testing.T) {
	b := startBroker(t, "a", ipA, nil)
	peers := [][]string{{"nats-route://127.0.0.3:1"}, {"nats-route://127.0.0.4:1"}}

	var (
		wg      sync.WaitGroup
		badErrs atomic.Int32
	)
	for i := range 4 {
		wg.Go(func() { // SetPeers racing with Close
			for j := 0; ; j++ {
				err := b.SetPeers(peers[(i+j)%2])
				if errors.Is(err, broker.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("SetPeers: %v", err)
					badErrs.Add(1)
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			b.Close()
			// Every Close returns only once the broker is stopped.
			if b.Server().Running() || !b.Conn().IsClosed() {
				t.Error("Close returned before the broker stopped")
			}
		})
	}
	wg.Wait()
	b.Close() // and once more

	if !b.Conn().IsClosed() {
		t.Error("client connection still open after Close")
	}
	if err := b.SetPeers(nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("SetPeers after Close = %v, want ErrClosed", err)
	}
	if got := b.Routes(); len(got) != 0 {
		t.Errorf("Routes after Close = %v", got)
	}
	// Both listeners are gone: their ports can be bound again.
	for _, raw := range []string{b.ClientURL(), b.ClusterURL()} {
		u, _ := url.Parse(raw)
		ln, err := net.Listen("tcp", u.Host)
		if err != nil {
			t.Errorf("port of %s still bound after Close: %v", raw, err)
			continue
		}
		ln.Close()
	}
}

// HasInterest sees a subscription on another server once it has crossed the
// route, and no longer after it is gone.
func TestHasInterestAcrossRoutes(t *testing.T) {
	nodes := mesh(t, "a", "b")
	a, b := nodes[0].b, nodes[1].b
	if a.HasInterest("tasks.x") {
		t.Fatal("interest before anyone subscribed")
	}
	sub, err := b.Conn().SubscribeSync("tasks.x")
	if err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		if !a.HasInterest("tasks.x") || a.HasInterest("tasks.y") {
			return errors.New("a does not see exactly b's subscription")
		}
		return nil
	})
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		if a.HasInterest("tasks.x") {
			return errors.New("a still sees the removed subscription")
		}
		return nil
	})
}

// TestCloseIsIdempotent closes a broker from several goroutines at once:
// every call returns with the server stopped, and it is stopped once.
func TestCloseIsIdempotent(t *testing.T) {
	rec := &logRecorder{}
	b := startBroker(t, "a", "127.0.0.2", slog.New(rec))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Close()
			if b.Server().Running() {
				t.Error("Close returned with the server still running")
			}
		}()
	}
	wg.Wait()
	b.Close()
	if n := len(rec.matching("broker stopped")); n != 1 {
		t.Fatalf("broker stopped logged %d times, want 1", n)
	}
}
