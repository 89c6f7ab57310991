package broker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/internal/tlsfiles"
	"github.com/meshpool/meshpool/message"
)

// The secure tests' addresses: each node's certificate is for its own.
var secureIPs = []string{"127.0.0.92", "127.0.0.93", "127.0.0.94", "127.0.0.95"}

const (
	routeSecret       = "route-secret-Xy7"
	submitterPassword = "submitter-pw-Q2w"
	observerPassword  = "observer-pw-Z9k"
)

// securePKI writes a cluster CA, a certificate per secure IP, and a
// certificate for the last IP from another CA.
type securePKI struct {
	dir           string
	ca            string
	authority     *pki.CA
	certs, keys   []string // per secureIPs
	foreign       string   // cert for secureIPs[3] from another CA
	foreignKey    string
	expired       string // expired cert for secureIPs[0] from the CA
	expiredKey    string
	users         []broker.User
	usersFile     string
	submitterHash string
	nkey          nkeys.KeyPair // of a submitter known by its public nkey
}

func newSecurePKI(t *testing.T) securePKI {
	t.Helper()
	dir := t.TempDir()
	p := securePKI{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	ca, err := pki.NewCA("cluster CA", pki.ValidFor(time.Hour))
	check(t, err)
	p.authority = ca
	other, err := pki.NewCA("other CA", pki.ValidFor(time.Hour))
	check(t, err)
	check(t, ca.WriteCert(p.ca))
	issue := func(c *pki.CA, name, ip string, v pki.Validity) (string, string) {
		ips, err := pki.IPs(ip)
		check(t, err)
		l, err := c.Issue(name, ips, v)
		check(t, err)
		cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		check(t, l.Write(cert, key))
		return cert, key
	}
	for i, ip := range secureIPs {
		c, k := issue(ca, fmt.Sprintf("node%d", i), ip, pki.ValidFor(time.Hour))
		p.certs, p.keys = append(p.certs, c), append(p.keys, k)
	}
	p.foreign, p.foreignKey = issue(other, "foreign", secureIPs[3], pki.ValidFor(time.Hour))
	p.expired, p.expiredKey = issue(ca, "expired", secureIPs[0],
		pki.Validity{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})

	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		check(t, err)
		return string(h)
	}
	p.nkey, err = nkeys.CreateUser()
	check(t, err)
	nkey, err := p.nkey.PublicKey()
	check(t, err)
	p.users = []broker.User{
		{Name: "submitter", Role: broker.RoleSubmitter, PasswordHash: hash(submitterPassword)},
		{Name: "observer", Role: broker.RoleObserver, PasswordHash: hash(observerPassword)},
		{Nkey: nkey, Role: broker.RoleSubmitter},
	}
	p.usersFile = filepath.Join(dir, "users")
	var b strings.Builder
	b.WriteString("# name role bcrypt\n\n")
	for _, u := range p.users {
		if u.Nkey != "" {
			fmt.Fprintf(&b, "%s %s\n", u.Nkey, u.Role)
			continue
		}
		fmt.Fprintf(&b, "%s %s %s\n", u.Name, u.Role, u.PasswordHash)
	}
	check(t, os.WriteFile(p.usersFile, []byte(b.String()), 0o600))
	return p
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// textLog keeps everything logged, attributes included, to search for
// secrets and reasons.
type textLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *textLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *textLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type secureNode struct {
	node
	text *textLog
}

// startSecure starts a broker on secureIPs[i] with sec, logging both into
// a recorder (messages) and a text log (everything, at debug level).
func startSecure(t *testing.T, name string, i int, sec broker.Security) secureNode {
	t.Helper()
	rec, text := &logRecorder{}, &textLog{}
	log := slog.New(multiHandler{rec, slog.NewTextHandler(text, &slog.HandlerOptions{Level: slog.LevelDebug})})
	cfg := broker.DefaultConfig()
	cfg.Name, cfg.Host = name, secureIPs[i]
	cfg.ClientPort, cfg.ClusterPort = broker.RandomPort, broker.RandomPort
	cfg.Logger, cfg.Security = log, sec
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	t.Cleanup(b.Close)
	return secureNode{node: node{name: name, b: b, log: rec}, text: text}
}

func (p securePKI) security(i int) broker.Security {
	return broker.Security{CAFile: p.ca, CertFile: p.certs[i], KeyFile: p.keys[i], RoutePassword: routeSecret, Users: p.users}
}

// TestSecureRoutes: nodes with the cluster CA's certificate and the route
// secret form a mesh; a node with a wrong secret, a certificate from
// another CA, or no TLS at all is refused both ways, says why in its log,
// and the mesh goes on. No log line holds the secret.
func TestSecureRoutes(t *testing.T) {
	p := newSecurePKI(t)
	a := startSecure(t, "a", 0, p.security(0))
	b := startSecure(t, "b", 1, p.security(1))
	connectAll(t, []node{a.node, b.node})

	wrongSecret := p.security(2)
	wrongSecret.RoutePassword = "not-the-secret"
	foreignCA := p.security(3)
	foreignCA.CertFile, foreignCA.KeyFile = p.foreign, p.foreignKey
	foreignCA.CAFile = filepath.Join(p.dir, "foreign-ca.pem") // it trusts its own CA, as a stranger would
	check(t, os.WriteFile(foreignCA.CAFile, mustRead(t, p.foreign), 0o644))
	tests := []struct {
		name   string
		i      int
		sec    broker.Security
		reason string // in the refused node's log
	}{
		{"wrong route secret", 2, wrongSecret, "route secrets differ"},
		{"certificate from another CA", 3, foreignCA, "TLS handshake failed"},
		{"no TLS, no secret", 3, broker.Security{}, "route secret or TLS settings differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := startSecure(t, "x", tt.i, tt.sec)
			// Everyone dials everyone, as the registry would make them.
			all := []node{a.node, b.node, x.node}
			for _, n := range all {
				check(t, n.b.SetPeers(clusterURLs(all, n.name)))
			}
			testutil.EventuallyNil(t, 10*time.Second, func() error {
				if !strings.Contains(x.text.String(), tt.reason) {
					return fmt.Errorf("the refused node has not logged %q; its log:\n%s", tt.reason, x.text.String())
				}
				return nil
			})
			// Over a full retry period (1s) no message crosses between x
			// and the others, either way. (Routes() may list x for a
			// moment: a node that dials x registers the route from x's
			// INFO before x answers its CONNECT with the refusal.)
			fromX, toX := make(chan *nats.Msg, 64), make(chan *nats.Msg, 64)
			for _, n := range []node{a.node, b.node} {
				sub, err := n.b.Conn().ChanSubscribe("from.x", fromX)
				check(t, err)
				defer sub.Unsubscribe()
			}
			sub, err := x.b.Conn().ChanSubscribe("to.x", toX)
			check(t, err)
			defer sub.Unsubscribe()
			testutil.ConsistentlyNil(t, 1500*time.Millisecond, func() error {
				check(t, x.b.Conn().Publish("from.x", []byte("leak")))
				check(t, a.b.Conn().Publish("to.x", []byte("leak")))
				check(t, b.b.Conn().Publish("to.x", []byte("leak")))
				select {
				case m := <-fromX:
					return fmt.Errorf("a message from x crossed: %s", m.Subject)
				case m := <-toX:
					return fmt.Errorf("a message to x crossed: %s", m.Subject)
				default:
					return nil
				}
			})
			testutil.EventuallyNil(t, 3*time.Second, func() error {
				for _, n := range all {
					if got := n.b.Routes(); slices.Contains(got, "x") || (n.name == "x" && len(got) > 0) {
						return fmt.Errorf("%s routes to %v", n.name, got)
					}
				}
				return nil
			})
			// a and b still route messages.
			msgs := make(chan *nats.Msg, 16)
			still, err := b.b.Conn().ChanSubscribe("still.there", msgs)
			check(t, err)
			defer still.Unsubscribe()
			testutil.EventuallyNil(t, 5*time.Second, func() error { return publishUntilReceived(a.b.Conn(), "still.there", "hi", msgs) })
			for _, n := range []secureNode{a, b, x} {
				if strings.Contains(n.text.String(), routeSecret) {
					t.Errorf("%s logged the route secret", n.name)
				}
				if os.Getenv("SHOWLOG") != "" {
					t.Logf("log of %s:\n%s", n.name, n.text.String())
				}
			}
			x.b.Close()
			for _, n := range []node{a.node, b.node} {
				check(t, n.b.SetPeers(clusterURLs([]node{a.node, b.node}, n.name)))
			}
		})
	}
	// nats-server logs a removed route with its URL, user info included
	// (reload.go: "Removed route %v"): the broker must redact it.
	check(t, a.b.SetPeers(nil))
	testutil.EventuallyNil(t, 5*time.Second, func() error {
		if !strings.Contains(a.text.String(), "Removed route nats-route://route:[REDACTED]@") {
			return errors.New("no redacted \"Removed route\" line in a's log")
		}
		return nil
	})
	for _, n := range []secureNode{a, b} {
		if s := n.text.String(); strings.Contains(s, routeSecret) || !strings.Contains(s, "Trying to connect to route") {
			t.Errorf("%s: the route secret is in the log, or the log is not at debug level", n.name)
		}
	}
}

// TestRouteIdentity: a route needs the route identity on both sides, not
// only a certificate from the cluster CA. A listener presenting etcd's
// server certificate (same CA, right IP) that a node is told to dial gets
// no CONNECT, so never the route secret, and is dialled again about once
// a second, not faster; a peer dialling in with an operator's client
// certificate from the same CA gets nothing either. A node certificate
// from the same CA does get the server's INFO: the refusals are the
// identity's doing.
func TestRouteIdentity(t *testing.T) {
	p := newSecurePKI(t)
	a := startSecure(t, "a", 0, p.security(0))
	roguePool, err := tlsfiles.CAPool(p.ca)
	check(t, err)
	leaf := func(use pki.Use, ip string) tls.Certificate {
		var ips []net.IP
		if ip != "" {
			ips, err = pki.IPs(ip)
			check(t, err)
		}
		l, err := p.authority.IssueFor(use, "rogue", ips, pki.ValidFor(time.Hour))
		check(t, err)
		kp, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		check(t, err)
		return kp
	}

	t.Run("a node dials a listener with etcd's certificate", func(t *testing.T) {
		ln, err := tls.Listen("tcp", net.JoinHostPort(secureIPs[3], "0"), &tls.Config{
			Certificates: []tls.Certificate{leaf(pki.Server, secureIPs[3])}, ClientAuth: tls.RequestClientCert})
		check(t, err)
		defer ln.Close()
		var mu sync.Mutex
		var accepted int
		var got bytes.Buffer
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(3 * time.Second))
					b, _ := io.ReadAll(c)
					mu.Lock()
					got.Write(b)
					mu.Unlock()
				}()
			}
		}()
		start := time.Now()
		check(t, a.b.SetPeers([]string{"nats-route://" + ln.Addr().String()}))
		testutil.EventuallyNil(t, 10*time.Second, func() error {
			if !strings.Contains(a.text.String(), tlsfiles.NodeURI) {
				return fmt.Errorf("a has not logged that the peer lacks %s", tlsfiles.NodeURI)
			}
			return nil
		})
		time.Sleep(4 * time.Second)
		check(t, a.b.SetPeers(nil))
		mu.Lock()
		defer mu.Unlock()
		elapsed := time.Since(start)
		if accepted == 0 {
			t.Fatal("a never dialled the listener")
		}
		if rate := float64(accepted) / elapsed.Seconds(); rate > 3 {
			t.Errorf("a dialled the listener %d times in %s (%.1f/s): want about once a second", accepted, elapsed.Round(time.Millisecond), rate)
		}
		if got.Len() > 0 || strings.Contains(a.text.String(), "Route connection created") {
			t.Errorf("the listener was sent %d bytes after the handshake (%q) or a routed to it", got.Len(), got.String())
		}
		t.Logf("a dialled the listener %d times in %s; it was sent nothing", accepted, elapsed.Round(time.Millisecond))
	})

	dialIn := func(cert tls.Certificate) (string, error) {
		_, port, err := net.SplitHostPort(strings.TrimPrefix(a.b.ClusterURL(), "nats-route://"))
		check(t, err)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", net.JoinHostPort(secureIPs[0], port),
			&tls.Config{RootCAs: roguePool, Certificates: []tls.Certificate{cert}})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	t.Run("a peer dials in with a client certificate from the cluster CA", func(t *testing.T) {
		got, err := dialIn(leaf(pki.Client, ""))
		if strings.Contains(got, "INFO") || err == nil {
			t.Fatalf("read %q, %v: want the connection refused with nothing sent", got, err)
		}
	})
	t.Run("a node certificate from the cluster CA is answered", func(t *testing.T) {
		if got, err := dialIn(leaf(pki.Node, secureIPs[3])); !strings.Contains(got, "INFO") {
			t.Fatalf("read %q, %v: want the server's INFO", got, err)
		}
	})
	if strings.Contains(a.text.String(), routeSecret) {
		t.Error("a logged the route secret")
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	check(t, err)
	return b
}

// TestClientPermissions connects over TCP and TLS as each role and checks
// what the server lets through. Refusals are checked twice: the server
// answers with a permission violation, and the node's own subscriber gets
// nothing.
func TestClientPermissions(t *testing.T) {
	p := newSecurePKI(t)
	a := startSecure(t, "a", 0, p.security(0))
	b := startSecure(t, "b", 1, p.security(1))
	connectAll(t, []node{a.node, b.node})

	// What a node would receive: the worker's tasks.<id>, the master's
	// results and submissions, anonymous and named (on the other node,
	// across the route).
	got := make(chan *nats.Msg, 64)
	for _, subj := range []string{"tasks.b-1234", "results", "tasks.submit", "tasks.submit.*", "events"} {
		sub, err := b.b.Conn().ChanSubscribe(subj, got)
		check(t, err)
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	check(t, b.b.Conn().Flush())
	// Wait until a knows b's interest, so that a forbidden message would
	// reach b if the server let it through.
	for _, subj := range []string{"tasks.b-1234", "results", "tasks.submit", "tasks.submit.x", "events"} {
		testutil.EventuallyNil(t, 5*time.Second, func() error { return publishUntilReceived(a.b.Conn(), subj, "ping", got) })
	}
	for len(got) > 0 {
		<-got
	}
	url := a.b.ClientURL()
	tlsOpt := nats.RootCAs(p.ca)

	dial := func(t *testing.T, opts ...nats.Option) (*nats.Conn, chan error) {
		t.Helper()
		errs := make(chan error, 16)
		nc, err := nats.Connect(url, append(opts, tlsOpt, nats.MaxReconnects(0),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))...)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc, errs
	}
	// expectViolation publishes (or subscribes) and waits for the server's
	// permission violation; nothing may reach the node.
	expectViolation := func(t *testing.T, errs chan error, what string) {
		t.Helper()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
				t.Fatalf("error %v: want a permission violation for %s", err, what)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no permission violation for %s", what)
		}
	}
	nothingArrives := func(t *testing.T) {
		t.Helper()
		select {
		case m := <-got:
			t.Fatalf("the node received %q on %s", m.Data, m.Subject)
		case <-time.After(200 * time.Millisecond):
		}
	}

	t.Run("no credentials", func(t *testing.T) {
		_, err := nats.Connect(url, tlsOpt, nats.MaxReconnects(0))
		if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
			t.Fatalf("connect without credentials: %v, want an authorization violation", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := nats.Connect(url, tlsOpt, nats.UserInfo("submitter", "guess"), nats.MaxReconnects(0))
		if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
			t.Fatalf("connect with a wrong password: %v, want an authorization violation", err)
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		_, err := nats.Connect(url, nats.UserInfo("submitter", submitterPassword), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connected without TLS")
		}
	})
	t.Run("the in-process user over TCP", func(t *testing.T) {
		_, err := nats.Connect(url, tlsOpt, nats.UserInfo("_meshpool_node", ""), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("connected as the in-process user over TCP")
		}
	})
	t.Run("submitter", func(t *testing.T) {
		nc, errs := dial(t, nats.UserInfo("submitter", submitterPassword), nats.CustomInboxPrefix(message.InboxPrefix("submitter")))
		// Not a task, a cancel, a result or an event in the master's name;
		// and a submission only under its own name, so that the master
		// counts it as the submitter's.
		for _, subj := range []string{"tasks.b-1234", "tasks.b-1234.cancel", "results", "events",
			"tasks.submit", "tasks.submit.observer", "tasks.submit." + p.users[2].Nkey, "tasks.submit.*", "tasks.submit.>"} {
			check(t, nc.Publish(subj, []byte(`{"uuid":"fake"}`)))
			expectViolation(t, errs, `Publish to "`+subj+`"`)
		}
		nothingArrives(t)
		if _, err := nc.SubscribeSync("tasks.>"); err != nil {
			t.Fatal(err)
		}
		expectViolation(t, errs, `Subscription to "tasks.>"`)
		// What it may do: submit (the node receives it), follow results.
		sub, err := nc.SubscribeSync("results")
		check(t, err)
		// (Interest crosses the route asynchronously: publish until seen.)
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			check(t, nc.Publish("tasks.submit.submitter", []byte(`{"number":1}`)))
			select {
			case m := <-got:
				if m.Subject != "tasks.submit.submitter" {
					t.Fatalf("got %s, want tasks.submit.submitter", m.Subject)
				}
				return nil
			case <-time.After(100 * time.Millisecond):
				return errors.New("the submission did not reach the node")
			}
		})
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			check(t, b.b.Conn().Publish("results", []byte("r")))
			if _, err := sub.NextMsg(100 * time.Millisecond); err != nil {
				return fmt.Errorf("result not received: %w", err)
			}
			return nil
		})
		for len(got) > 0 {
			<-got
		}
		// Request-reply: the answer comes to its inbox; so do those of the
		// operations on tasks.
		for _, subj := range []string{"tasks.submit.submitter", "tasks.get", "tasks.list", "tasks.cancel", "tasks.retry",
			"tasks.schedule.add", "tasks.schedule.remove", "tasks.schedule.list"} {
			rs, err := b.b.Conn().Subscribe(subj, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
			check(t, err)
			testutil.EventuallyNil(t, 5*time.Second, func() error {
				_, err := nc.Request(subj, []byte(`{"number":2}`), 200*time.Millisecond)
				return err
			})
			check(t, rs.Unsubscribe())
		}
		for len(got) > 0 {
			<-got
		}
	})
	t.Run("a submitter known by its nkey", func(t *testing.T) {
		pub := p.users[2].Nkey
		nc, errs := dial(t, nats.Nkey(pub, p.nkey.Sign))
		for _, subj := range []string{"tasks.submit", "tasks.submit.submitter", "results"} {
			check(t, nc.Publish(subj, []byte(`{"number":1}`)))
			expectViolation(t, errs, `Publish to "`+subj+`"`)
		}
		nothingArrives(t)
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			check(t, nc.Publish("tasks.submit."+pub, []byte(`{"number":1}`)))
			select {
			case m := <-got:
				if m.Subject != "tasks.submit."+pub {
					t.Fatalf("got %s, want tasks.submit.%s", m.Subject, pub)
				}
				return nil
			case <-time.After(100 * time.Millisecond):
				return errors.New("the submission did not reach the node")
			}
		})
		for len(got) > 0 {
			<-got
		}
	})
	t.Run("observer", func(t *testing.T) {
		nc, errs := dial(t, nats.UserInfo("observer", observerPassword), nats.CustomInboxPrefix(message.InboxPrefix("observer")))
		for _, subj := range []string{"tasks.b-1234", "tasks.b-1234.cancel", "tasks.submit", "tasks.submit.observer", "tasks.cancel", "tasks.retry",
			"tasks.schedule.add", "tasks.schedule.remove", "results", "events"} {
			check(t, nc.Publish(subj, []byte(`{"number":1}`)))
			expectViolation(t, errs, `Publish to "`+subj+`"`)
		}
		nothingArrives(t)
		// It may read: get, list, the schedules.
		for _, subj := range []string{"tasks.get", "tasks.list", "tasks.schedule.list"} {
			rs, err := b.b.Conn().Subscribe(subj, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
			check(t, err)
			testutil.EventuallyNil(t, 5*time.Second, func() error {
				_, err := nc.Request(subj, []byte(`{}`), 200*time.Millisecond)
				return err
			})
			check(t, rs.Unsubscribe())
		}
		for _, subj := range []string{"events", "tasks.>", "_INBOX.>", "_INBOX.submitter.>", "_INBOX.*.>"} {
			_, err := nc.SubscribeSync(subj)
			check(t, err)
			expectViolation(t, errs, `Subscription to "`+subj+`"`)
		}
		sub, err := nc.SubscribeSync("results")
		check(t, err)
		testutil.EventuallyNil(t, 5*time.Second, func() error {
			check(t, b.b.Conn().Publish("results", []byte("r")))
			if _, err := sub.NextMsg(100 * time.Millisecond); err != nil {
				return fmt.Errorf("result not received: %w", err)
			}
			return nil
		})
	})

	// Monitoring shows no secret: varz lists routes by host only.
	for _, path := range []string{"/varz", "/routez", "/connz?auth=1", "/subsz"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		switch {
		case strings.HasPrefix(path, "/varz"):
			a.b.Server().HandleVarz(rec, req)
		case strings.HasPrefix(path, "/routez"):
			a.b.Server().HandleRoutez(rec, req)
		case strings.HasPrefix(path, "/connz"):
			a.b.Server().HandleConnz(rec, req)
		default:
			a.b.Server().HandleSubsz(rec, req)
		}
		body := rec.Body.String()
		for _, s := range []string{routeSecret, submitterPassword, p.users[0].PasswordHash} {
			if strings.Contains(body, s) {
				t.Errorf("%s shows a secret: %s", path, body)
			}
		}
		if path == "/varz" && !strings.Contains(body, `"tls_required": true`) {
			t.Errorf("/varz does not say TLS is required: %s", body)
		}
	}
}

// TestSecurityConfig: a certificate that cannot work is reported at Start,
// at once and naming the file.
func TestSecurityConfig(t *testing.T) {
	p := newSecurePKI(t)
	tests := []struct {
		name   string
		i      int
		change func(s *broker.Security)
		want   string
	}{
		{"expired certificate", 0, func(s *broker.Security) { s.CertFile, s.KeyFile = p.expired, p.expiredKey }, "expired.pem expired at"},
		{"certificate for another address", 1, func(s *broker.Security) {}, "is not for this node's address 127.0.0.92"},
		{"certificate from another CA", 3, func(s *broker.Security) { s.CertFile, s.KeyFile = p.foreign, p.foreignKey }, "does not verify against the CA"},
		{"key of another certificate", 0, func(s *broker.Security) { s.KeyFile = p.keys[1] }, "private key does not match"},
		{"secret without TLS", 0, func(s *broker.Security) { s.CertFile, s.KeyFile, s.CAFile = "", "", "" }, "needs TLS"},
		{"missing CA file", 0, func(s *broker.Security) { s.CAFile = filepath.Join(p.dir, "nope.pem") }, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := p.security(tt.i)
			tt.change(&sec)
			cfg := broker.DefaultConfig()
			cfg.Name, cfg.Host = "a", secureIPs[0]
			cfg.ClientPort, cfg.ClusterPort = broker.RandomPort, broker.RandomPort
			cfg.Security = sec
			start := time.Now()
			b, err := broker.Start(cfg)
			if err == nil {
				b.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) || time.Since(start) > time.Second {
				t.Fatalf("error %q after %s: want %q at once", err, time.Since(start), tt.want)
			}
		})
	}
}

func TestReadUsers(t *testing.T) {
	dir := t.TempDir()
	hash := "$2a$04$abcdefghijklmnopqrstuu5Zp5D6r1r5b6CzKx0x9pGZ8fV0WnQFi"
	nkey := "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	tests := []struct {
		name, content, err string
		want               int
	}{
		{"users and an nkey", "# c\nsubmitter submitter " + hash + "\n\n  observer observer " + hash + "\n" + nkey + " node\n", "", 3},
		{"unknown role", "x admin " + hash + "\n", "role \"admin\"", 0},
		{"plain password", "x submitter hunter2\n", "must be a bcrypt hash", 0},
		{"reserved name", "route node " + hash + "\n", "reserved", 0},
		{"a name that is not one subject token", "ci.bot submitter " + hash + "\n", `user name "ci.bot" has a character other than a letter, digit, '-' or '_'`, 0},
		{"a name with a wildcard", "* submitter " + hash + "\n", "user name", 0},
		{"listed twice", "x node " + hash + "\nx observer " + hash + "\n", "listed twice", 0},
		{"wrong field count", "x node\n", "line 1", 0},
		{"empty", "# nobody\n", "lists no user", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, "users")
			check(t, os.WriteFile(f, []byte(tt.content), 0o600))
			users, err := broker.ReadUsers(f)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			check(t, err)
			if len(users) != tt.want {
				t.Fatalf("%d users, want %d", len(users), tt.want)
			}
		})
	}
}

// multiHandler sends every record to all its handlers.
type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range m {
		_ = h.Handle(ctx, r.Clone())
	}
	return nil
}
func (m multiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(as)
	}
	return out
}
func (m multiHandler) WithGroup(g string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(g)
	}
	return out
}

// TestTLSFirst: with TLSFirst the client port says nothing to a client
// that does not start TLS (no INFO, so neither the version nor the other
// nodes' URLs), and a client that starts TLS at once logs in; without it
// the server greets every TCP connection with its INFO.
func TestTLSFirst(t *testing.T) {
	p := newSecurePKI(t)
	for _, first := range []bool{true, false} {
		t.Run(fmt.Sprintf("TLSFirst=%v", first), func(t *testing.T) {
			sec := p.security(0)
			sec.TLSFirst = first
			a := startSecure(t, "a", 0, sec)
			c, err := net.Dial("tcp", strings.TrimPrefix(a.b.ClientURL(), "nats://"))
			check(t, err)
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			b := make([]byte, 4096)
			n, _ := c.Read(b)
			if got := string(b[:n]); first != (n == 0) || (!first && !strings.HasPrefix(got, "INFO ")) {
				t.Fatalf("a plain TCP client read %q", got)
			}
			pool, err := tlsfiles.CAPool(p.ca)
			check(t, err)
			opts := []nats.Option{nats.Secure(&tls.Config{RootCAs: pool}), nats.UserInfo("submitter", submitterPassword), nats.MaxReconnects(0)}
			if first {
				opts = append(opts, nats.TLSHandshakeFirst())
			}
			nc, err := nats.Connect(a.b.ClientURL(), opts...)
			check(t, err)
			nc.Close()
		})
	}
}
