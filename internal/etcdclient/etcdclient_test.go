package etcdclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/testutil/etcdtest"
)

// etcd's address in these tests: its certificate is for it.
const etcdIP = "127.0.0.91"

type files struct {
	ca, otherCA                 string // CA certificates
	server, serverKey           string // etcd's certificate
	client, clientKey           string // a client certificate from ca
	foreign, foreignKey         string // a client certificate from otherCA
	expired, expiredKey         string // an expired client certificate from ca
	expiredServer, expServerKey string
}

func writePKI(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	f := files{
		ca: p("ca.pem"), otherCA: p("other-ca.pem"), server: p("server.pem"), serverKey: p("server-key.pem"),
		client: p("client.pem"), clientKey: p("client-key.pem"), foreign: p("foreign.pem"), foreignKey: p("foreign-key.pem"),
		expired: p("expired.pem"), expiredKey: p("expired-key.pem"),
	}
	ca, err := pki.NewCA("test CA", pki.ValidFor(time.Hour))
	must(t, err)
	other, err := pki.NewCA("other CA", pki.ValidFor(time.Hour))
	must(t, err)
	must(t, ca.WriteCert(f.ca))
	must(t, other.WriteCert(f.otherCA))
	ips, err := pki.IPs(etcdIP)
	must(t, err)
	issue := func(c *pki.CA, name string, v pki.Validity, cert, key string) {
		l, err := c.Issue(name, ips, v)
		must(t, err)
		must(t, l.Write(cert, key))
	}
	issue(ca, "etcd", pki.ValidFor(time.Hour), f.server, f.serverKey)
	issue(ca, "meshpool-node", pki.ValidFor(time.Hour), f.client, f.clientKey)
	issue(other, "meshpool-node", pki.ValidFor(time.Hour), f.foreign, f.foreignKey)
	issue(ca, "meshpool-node", pki.Validity{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, f.expired, f.expiredKey)
	f.expiredServer, f.expServerKey = filepath.Join(dir, "expired-server.pem"), filepath.Join(dir, "expired-server-key.pem")
	issue(ca, "etcd", pki.Validity{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, f.expiredServer, f.expServerKey)
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConnectSecure runs one etcd with TLS, client certificates and
// authentication, and checks that every wrong credential is refused at once
// with an error that says what failed.
func TestConnectSecure(t *testing.T) {
	f := writePKI(t)
	srv := etcdtest.Start(t, embedetcd.Config{Host: etcdIP, CertFile: f.server, KeyFile: f.serverKey, ClientCAFile: f.ca})
	const password = "s3cret-etcd-password"
	must(t, srv.Embedded().EnableAuth(t.Context(), "root-password",
		embedetcd.User{Name: "meshpool", Password: password, Prefix: "/meshpool"},
		embedetcd.User{Name: "other", Password: "other-password", Prefix: "/other"}))
	ep := srv.Endpoint()
	// 4 s: a TLS handshake, in a process that runs etcd under the race
	// detector, on a loaded machine; a check of a password takes longer.
	good := etcdclient.Options{Endpoints: []string{"https://" + ep}, DialTimeout: 4 * time.Second,
		CACert: f.ca, Cert: f.client, Key: f.clientKey, Username: "meshpool", Password: password}

	// A password, right or wrong, goes through etcd's bcrypt check, which
	// takes about 0.8 s here under the race detector and longer on a loaded
	// machine (all of make test's packages at once, 2 cores: 4 s were not
	// enough, twice).
	bcrypt := func(o *etcdclient.Options) { o.DialTimeout = 15 * time.Second }

	t.Run("right credentials", func(t *testing.T) {
		slow := good
		bcrypt(&slow)
		cli, err := etcdclient.Connect(t.Context(), slow, "/meshpool/nodes/", nil)
		must(t, err)
		defer cli.Close()
		if _, err := cli.Put(t.Context(), "/meshpool/x", "y"); err != nil {
			t.Fatalf("put under the prefix: %v", err)
		}
		// Outside the prefix, and under a prefix that only starts the
		// same: the grant is the prefix and its slash.
		for _, key := range []string{"/other/x", "/meshpool-staging/x", "/meshpool"} {
			if _, err := cli.Put(t.Context(), key, "y"); err == nil {
				t.Fatalf("put %s succeeded; want permission denied", key)
			}
		}
	})

	tests := []struct {
		name   string
		change func(o *etcdclient.Options)
		want   error
		text   []string // the error must say this
	}{
		{"wrong password", func(o *etcdclient.Options) { o.Password = "wrong"; bcrypt(o) }, etcdclient.ErrAuth, []string{"authentication failed", `"meshpool"`}},
		{"no user", func(o *etcdclient.Options) { o.Username, o.Password = "", "" }, etcdclient.ErrAuth, []string{"requires a user", "--etcd-user"}},
		{"user without rights on the prefix", func(o *etcdclient.Options) { o.Username, o.Password = "other", "other-password"; bcrypt(o) }, etcdclient.ErrAuth, []string{`user "other" may not read`}},
		{"server certificate from another CA", func(o *etcdclient.Options) { o.CACert = f.otherCA }, etcdclient.ErrTLS, []string{"x509", "unknown authority"}},
		{"client certificate from another CA", func(o *etcdclient.Options) { o.Cert, o.Key = f.foreign, f.foreignKey }, etcdclient.ErrTLS, []string{"tls"}},
		{"no client certificate", func(o *etcdclient.Options) { o.Cert, o.Key = "", "" }, etcdclient.ErrTLS, []string{"certificate"}},
		{"expired client certificate", func(o *etcdclient.Options) { o.Cert, o.Key = f.expired, f.expiredKey }, nil, []string{"expired.pem expired at"}},
		{"no TLS", func(o *etcdclient.Options) { o.CACert, o.Cert, o.Key, o.Endpoints = "", "", "", []string{ep} }, etcdclient.ErrTLS, []string{"TLS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.change(&o)
			start := time.Now()
			cli, err := etcdclient.Connect(t.Context(), o, "/meshpool/nodes/", nil)
			took := time.Since(start)
			if err == nil {
				cli.Close()
				t.Fatal("connected; want an error")
			}
			// Refused at once: no retrying past the dial timeout.
			if took > o.DialTimeout+time.Second {
				t.Errorf("took %s to fail; want at most the dial timeout (%s)", took, o.DialTimeout)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q: want errors.Is %v", err, tt.want)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "root-password") {
				t.Errorf("error %q shows a password", err)
			}
			t.Logf("%s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestConnectExpiredServerCertificate: an etcd whose certificate has
// expired is a TLS error at once, not a timeout.
func TestConnectExpiredServerCertificate(t *testing.T) {
	f := writePKI(t)
	srv := etcdtest.Start(t, embedetcd.Config{Host: etcdIP, CertFile: f.expiredServer, KeyFile: f.expServerKey})
	start := time.Now()
	cli, err := etcdclient.Connect(t.Context(), etcdclient.Options{Endpoints: []string{"https://" + srv.Endpoint()}, DialTimeout: 2 * time.Second, CACert: f.ca}, "/meshpool/nodes/", nil)
	if err == nil {
		cli.Close()
		t.Fatal("connected to an etcd with an expired certificate")
	}
	if !errors.Is(err, etcdclient.ErrTLS) || !strings.Contains(err.Error(), "expired") || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: %v, want a TLS error saying the certificate expired", time.Since(start), err)
	}
}

func TestConnectUnreachable(t *testing.T) {
	o := etcdclient.Options{Endpoints: []string{etcdIP + ":1"}, DialTimeout: time.Second}
	cli, err := etcdclient.Connect(t.Context(), o, "/meshpool/nodes/", nil)
	if !errors.Is(err, etcdclient.ErrUnreachable) {
		t.Fatalf("error %v: want ErrUnreachable", err)
	}
	if cli == nil {
		t.Fatal("without a user Connect returns a client to retry with")
	}
	cli.Close()
	o.Username, o.Password = "u", "p"
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if cli, err := etcdclient.Connect(ctx, o, "/meshpool/nodes/", nil); !errors.Is(err, etcdclient.ErrUnreachable) || cli != nil {
		t.Fatalf("with a user: %v, %v: want no client and ErrUnreachable", cli, err)
	}
}

func TestValidateEndpoints(t *testing.T) {
	tests := []struct {
		endpoint string
		ok       bool
	}{
		{"127.0.0.1:2379", true},
		{"localhost:2379", true},
		{"http://127.0.0.1:2379", true},
		{"https://etcd.example:2379", true},
		{"[::1]:2379", true},
		{"localhost:abc", false},
		{"localhost:0", false},
		{"localhost:65536", false},
		{"localhost:+80", false},
		{"localhost", false},
		{":2379", false},
		{"http://127.0.0.1:2379/v3", false},
		{"unix://127.0.0.1:2379", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			err := etcdclient.Options{Endpoints: []string{tt.endpoint}}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tt.endpoint, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.endpoint) {
				t.Errorf("error %q does not name the endpoint", err)
			}
		})
	}
}

// TestConnectToSomethingElse points the client at servers that are not
// etcd: the error says what answered, not that TLS failed.
func TestConnectToSomethingElse(t *testing.T) {
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") })}
	webLn, err := net.Listen("tcp", etcdIP+":0")
	must(t, err)
	go func() { _ = web.Serve(webLn) }()
	t.Cleanup(func() { _ = web.Close() })

	closer, err := net.Listen("tcp", etcdIP+":0")
	must(t, err)
	t.Cleanup(func() { closer.Close() })
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f := writePKI(t)

	tests := []struct {
		name string
		o    etcdclient.Options
		text string
	}{
		{"an HTTP server", etcdclient.Options{Endpoints: []string{webLn.Addr().String()}}, webLn.Addr().String() + " does not speak etcd's gRPC (it answered HTTP/1.1)"},
		{"an HTTP server, with TLS", etcdclient.Options{Endpoints: []string{"https://" + webLn.Addr().String()}, CACert: f.ca}, webLn.Addr().String() + " does not speak etcd's gRPC (it answered HTTP/1.1)"},
		{"a listener that closes", etcdclient.Options{Endpoints: []string{closer.Addr().String()}}, closer.Addr().String() + " does not speak etcd's gRPC (it closed the connection without answering)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.DialTimeout = 2 * time.Second
			cli, err := etcdclient.Connect(t.Context(), tt.o, "/meshpool/nodes/", nil)
			if err == nil {
				cli.Close()
				t.Fatal("connected; want an error")
			}
			if !errors.Is(err, etcdclient.ErrNotEtcd) || errors.Is(err, etcdclient.ErrTLS) || errors.Is(err, etcdclient.ErrUnreachable) {
				t.Errorf("error %q: want ErrNotEtcd only", err)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			t.Log(err)
		})
	}
}
