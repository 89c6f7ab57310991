package e2e_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/testutil"
	"github.com/meshpool/meshpool/message"
)

// The secure cluster's addresses: etcd on .90 (a fixed port below the
// ephemeral range, used by no other test), nodes on .96-.98, a stranger on
// .99. secure-setup makes a node certificate for each of .96-.99: the
// stranger has a real certificate and lacks only what each case takes away.
const (
	secEtcdIP   = "127.0.0.90"
	secEtcdPort = 23990
	secPrefix   = "/secure"
	strangerIP  = "127.0.0.99"
)

var secNodeIPs = []string{"127.0.0.96", "127.0.0.97", "127.0.0.98"}

// secureSetup is what `meshpool secure-setup` wrote, plus the secrets read
// back, to search logs and responses for them.
type secureSetup struct {
	dir      string
	file     func(name string) string
	secrets  map[string]string // file name -> secret
	etcdURL  string
	etcdArgs []string // the etcd flags of an operator's tool: the client certificate
}

// as returns the option to connect as secure-setup's NATS user of role,
// with its nkey, asking from its own inboxes (the only ones it may read).
func (s secureSetup) as(t *testing.T, role string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(s.file(role + ".nk"))
	if err != nil {
		t.Fatal(err)
	}
	inbox := nats.CustomInboxPrefix(message.InboxPrefix(s.pub(t, role)))
	return func(opts *nats.Options) error {
		if err := o(opts); err != nil {
			return err
		}
		return inbox(opts)
	}
}

// pub returns the public nkey of secure-setup's NATS user of role.
func (s secureSetup) pub(t *testing.T, role string) string {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(s.secrets[role+".nk"]))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// unknownNkey returns the option to log in with an nkey no users file lists.
func unknownNkey(t *testing.T) nats.Option {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, kp.Sign)
}

// nodeArgs returns the etcd and NATS flags of the node at ip, with its own
// certificate.
func (s secureSetup) nodeArgs(ip string) []string {
	cert, key := s.file("node-"+ip+".pem"), s.file("node-"+ip+"-key.pem")
	return []string{"--etcd", s.etcdURL, "--etcd-cacert", s.file("ca.pem"), "--etcd-cert", cert,
		"--etcd-key", key, "--etcd-user", "meshpool", "--etcd-password-file", s.file("etcd.password"),
		"--nats-ca", s.file("ca.pem"), "--nats-cert", cert, "--nats-key", key,
		"--route-secret-file", s.file("route.secret"), "--nats-users", s.file("users")}
}

func newSecureSetup(t *testing.T) secureSetup {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secure")
	out, errOut, code := run(t, "secure-setup", "--dir", dir,
		"--node-ips", strings.Join(append(append([]string{}, secNodeIPs...), strangerIP), ","), "--etcd-ips", secEtcdIP)
	if code != 0 {
		t.Fatalf("secure-setup: exit %d: %s", code, errOut)
	}
	s := secureSetup{dir: dir, file: func(n string) string { return filepath.Join(dir, n) }, secrets: map[string]string{}}
	for _, f := range []string{"route.secret", "etcd.password", "etcd-root.password", "node.nk", "submitter.nk", "observer.nk"} {
		b, err := os.ReadFile(s.file(f))
		if err != nil {
			t.Fatal(err)
		}
		s.secrets[f] = strings.TrimSpace(string(b))
		if strings.Contains(out, s.secrets[f]) {
			t.Fatalf("secure-setup printed the secret of %s", f)
		}
	}
	// secure-setup's users have nkeys; a password user too, to try the
	// other kind of login: its bcrypt hash in the users file, its password
	// in a file.
	pw := "pw-" + uuid.NewString()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.file("users"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "pwsubmitter submitter %s\n", hash); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(s.file("pwsubmitter.password"), []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.secrets["pwsubmitter.password"] = pw
	s.etcdURL = fmt.Sprintf("https://%s:%d", secEtcdIP, secEtcdPort)
	s.etcdArgs = []string{"--etcd", s.etcdURL, "--etcd-cacert", s.file("ca.pem"), "--etcd-cert", s.file("client.pem"),
		"--etcd-key", s.file("client-key.pem"), "--etcd-user", "meshpool", "--etcd-password-file", s.file("etcd.password")}
	return s
}

// startSecureEtcd runs an etcd process that serves TLS only, requires
// client certificates from the CA, and has authentication on: user
// meshpool may read and write under secPrefix.
func startSecureEtcd(t *testing.T, s secureSetup) {
	t.Helper()
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "meshpool-e2e-etcd-secure-"); err == nil {
		dir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	purl := fmt.Sprintf("http://%s:%d", secEtcdIP, secEtcdPort+1)
	start(t, "etcd (TLS, auth)", "etcd", "--name", "secure", "--data-dir", dir,
		"--listen-client-urls", s.etcdURL, "--advertise-client-urls", s.etcdURL,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl, "--initial-cluster", "secure="+purl,
		"--cert-file", s.file("etcd.pem"), "--key-file", s.file("etcd-key.pem"),
		"--trusted-ca-file", s.file("ca.pem"), "--client-cert-auth",
		"--log-level", "error", "--logger", "zap")
	o := etcdclient.Options{Endpoints: []string{s.etcdURL}, DialTimeout: 2 * time.Second,
		CACert: s.file("ca.pem"), Cert: s.file("client.pem"), Key: s.file("client-key.pem")}
	var cli *clientv3.Client
	testutil.Eventually(t, 20*time.Second, "etcd serves TLS", func() bool {
		var err error
		cli, err = etcdclient.Connect(t.Context(), o, "/", nil)
		if err != nil && cli != nil {
			cli.Close()
			cli = nil
		}
		return err == nil
	})
	defer cli.Close()
	ctx := t.Context()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", s.secrets["etcd-root.password"]); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "meshpool"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "meshpool", secPrefix+"/", clientv3.GetPrefixRangeEnd(secPrefix+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "meshpool", s.secrets["etcd.password"]); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "meshpool", "meshpool"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcd auth set-up step %d: %v", i, err)
		}
	}
}

func startSecureNode(t *testing.T, s secureSetup, ip, name string, extra ...string) *proc {
	t.Helper()
	args := append([]string{binary, "node", "--prefix", secPrefix, "--advertise", ip, "--name", name,
		"--ttl", "3s", "--task-interval", "200ms", "--work-time", "10ms-50ms", "--log-format", "json", "--log-level", "debug"},
		s.nodeArgs(ip)...)
	// Flags given later win: the cases below override one setting.
	return start(t, "node "+name, append(args, extra...)...)
}

// secureStatus runs meshpool status with the etcd credentials.
func secureStatus(t *testing.T, s secureSetup) (clusterStatus, bool) {
	t.Helper()
	out, _, code := run(t, append([]string{"status", "--prefix", secPrefix, "--json", "--timeout", "3s"}, s.etcdArgs...)...)
	var st clusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return st, false
	}
	return st, true
}

// TestSecureCluster runs three nodes with every lock on, against an etcd
// process with TLS, client certificates and authentication, and checks that
// the cluster works for those with credentials and for nobody else.
func TestSecureCluster(t *testing.T) {
	s := newSecureSetup(t)
	startSecureEtcd(t, s)
	ca := s.file("ca.pem")

	// Node a keeps its operators' endpoints on their own listener.
	metricsURL := "http://" + secNodeIPs[0] + ":19222"
	started := time.Now()
	nodes := []*proc{startSecureNode(t, s, secNodeIPs[0], "a", "--metrics-addr", secNodeIPs[0]+":19222")}
	for i, ip := range secNodeIPs[1:] {
		// Node b and c take the etcd password from the environment.
		args := []string{"env", "MESHPOOL_ETCD_PASSWORD=" + s.secrets["etcd.password"], binary, "node", "--prefix", secPrefix,
			"--advertise", ip, "--name", string(rune('b' + i)), "--ttl", "3s", "--task-interval", "200ms", "--work-time", "10ms-50ms",
			"--log-format", "json", "--log-level", "debug"}
		args = append(args, s.nodeArgs(ip)...)
		args = append(args, "--etcd-password-file", "")
		nodes = append(nodes, start(t, "node "+string(rune('b'+i)), args...))
	}
	var st clusterStatus
	testutil.Eventually(t, 20*time.Second, "status shows 3 members and a master", func() bool {
		var ok bool
		st, ok = secureStatus(t, s)
		return ok && len(st.Members) == 3 && st.Master != nil
	})
	urls := map[string]string{} // node ID -> where its /status is
	for _, m := range st.Members {
		urls[m.ID] = m.HTTPURL
		if m.IP == secNodeIPs[0] {
			urls[m.ID] = metricsURL
		}
	}
	testutil.Eventually(t, 20*time.Second, "every node routed with both peers", func() bool {
		for _, u := range urls {
			ns, err := httpStatus(u)
			if err != nil || len(ns.Routes) != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("3 secure nodes started to fully routed with a master: %s", time.Since(started).Round(time.Millisecond))
	var worker record
	for _, m := range st.Members {
		if m.ID != st.Master.ID {
			worker = m
		}
	}
	server := worker.ClientURL

	// An observer follows results, over TLS, with its nkey.
	obs := connect(t, server, nats.RootCAs(ca), nats.TLSHandshakeFirst(), s.as(t, "observer"))
	results := newResultLog()
	if _, err := obs.nc.Subscribe("results", results.add); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "5 results seen by the observer", func() bool { return results.count() >= 5 })

	t.Run("submitter submits and gets results", func(t *testing.T) {
		out, errOut, code := run(t, "submit", "--server", server, "--nats-ca", ca, "--nats-nkey", s.file("submitter.nk"),
			"--count", "50", "--wait", "--timeout", "20s")
		if code != 0 || !strings.Contains(out, "accepted 50") || !strings.Contains(out, "results 50, missing 0") {
			t.Fatalf("submit exit %d: %s %s", code, out, errOut)
		}
	})

	t.Run("a password submitter submits", func(t *testing.T) {
		out, errOut, code := run(t, "submit", "--server", server, "--nats-ca", ca, "--nats-user", "pwsubmitter",
			"--nats-password-file", s.file("pwsubmitter.password"),
			"--number", "5", "--wait", "--timeout", "10s")
		if code != 0 || !strings.Contains(out, "5*3 = 15") {
			t.Fatalf("submit exit %d: %s %s", code, out, errOut)
		}
	})

	t.Run("an observer's meshpool watch shows results", func(t *testing.T) {
		w := start(t, "meshpool watch (observer)", binary, "watch", "--server", server, "--nats-ca", ca,
			"--nats-nkey", s.file("observer.nk"))
		testutil.Eventually(t, 10*time.Second, "a result line and the refusal of events", func() bool {
			out := w.out.String()
			return strings.Contains(out, " result ") && strings.Contains(out, `Subscription to "events"`)
		})
		w.kill()
	})

	t.Run("the operators' endpoints are only on --metrics-addr", func(t *testing.T) {
		var mainURL string
		for _, m := range st.Members {
			if m.IP == secNodeIPs[0] {
				mainURL = m.HTTPURL
			}
		}
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/status": 404, "/metrics": 404, "/": 404, "/stream": 404, "/nats/varz": 404} {
			if code := httpCode(t, mainURL+path); code != want {
				t.Errorf("main listener %s: %d, want %d", path, code, want)
			}
		}
		for _, path := range []string{"/status", "/metrics", "/", "/nats/varz", "/healthz"} {
			if code := httpCode(t, metricsURL+path); code != 200 {
				t.Errorf("metrics listener %s: %d, want 200", path, code)
			}
		}
	})

	// Forbidden publishes: the server says so, and no node acts on them.
	term := st.Term
	fakeTask := func() []byte {
		return []byte(fmt.Sprintf(`{"uuid":%q,"executor":%q,"number":7,"term":%d}`, uuid.NewString(), worker.ID, term))
	}
	fakeUUID := uuid.NewString()
	fakeResult := []byte(fmt.Sprintf(`{"uuid":%q,"executor":%q,"number":7,"result":21,"start":"2026-01-01T00:00:00.000Z","finish":"2026-01-01T00:00:00.001Z","term":%d}`,
		fakeUUID, worker.ID, term))
	t.Run("without credentials nobody connects", func(t *testing.T) {
		for _, opts := range [][]nats.Option{
			{nats.RootCAs(ca), nats.TLSHandshakeFirst()},
			{nats.RootCAs(ca), nats.TLSHandshakeFirst(), nats.UserInfo("submitter", "guess")},
			{nats.RootCAs(ca), nats.TLSHandshakeFirst(), nats.UserInfo("node", s.secrets["pwsubmitter.password"])},
			{nats.RootCAs(ca), nats.TLSHandshakeFirst(), nats.UserInfo("pwsubmitter", "guess")},
			{nats.RootCAs(ca), nats.TLSHandshakeFirst(), unknownNkey(t)},
		} {
			nc, err := nats.Connect(server, append(opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), "Authorization Violation") {
				t.Fatalf("error %v, want an authorization violation", err)
			}
		}
		_, errOut, code := run(t, "submit", "--server", server, "--nats-ca", ca, "--number", "1", "--timeout", "3s")
		if code == 0 || !strings.Contains(errOut, "Authorization Violation") {
			t.Fatalf("submit without credentials: exit %d: %s", code, errOut)
		}
	})
	t.Run("meshpool submit as observer fails at once", func(t *testing.T) {
		begin := time.Now()
		_, errOut, code := run(t, "submit", "--server", server, "--nats-ca", ca, "--nats-nkey", s.file("observer.nk"), "--number", "1")
		if code != 1 || !strings.Contains(errOut, `submit: not permitted: nats: permissions violation`) || time.Since(begin) > 5*time.Second {
			t.Fatalf("exit %d after %s: %s", code, time.Since(begin), errOut)
		}
	})
	for _, who := range []string{"observer", "submitter"} {
		t.Run(who+" may not send tasks or results", func(t *testing.T) {
			c := connect(t, server, nats.RootCAs(ca), nats.TLSHandshakeFirst(), s.as(t, who))
			// Nor submit anonymously or in another's name: the master
			// counts a submission as its subject's submitter's.
			subjects := map[string][]byte{"tasks." + worker.ID: fakeTask(), "results": fakeResult, "events": []byte(`{"kind":"left"}`),
				"tasks.submit": []byte(`{"number":5}`), "tasks.submit." + s.pub(t, "node"): []byte(`{"number":5}`)}
			if who == "observer" {
				subjects["tasks.submit."+s.pub(t, "observer")] = []byte(`{"number":5}`)
			}
			for subj, body := range subjects {
				if err := c.nc.Publish(subj, body); err != nil {
					t.Fatal(err)
				}
				c.expectViolation(t, `Publish to "`+subj+`"`)
			}
			if _, err := c.nc.Request("tasks."+worker.ID, fakeTask(), time.Second); err == nil {
				t.Fatal("a worker answered a task sent by " + who)
			}
		})
	}
	t.Run("no node acted on a forbidden message", func(t *testing.T) {
		time.Sleep(500 * time.Millisecond) // whatever got through would have arrived by now
		if n := results.with(fakeUUID); n != 0 {
			t.Fatalf("the fake result was seen %d times", n)
		}
		for id, u := range urls {
			var ns struct {
				Worker   struct{ Refused int64 } `json:"worker"`
				Dispatch struct {
					BadResults int64 `json:"bad_results"`
				} `json:"dispatch"`
			}
			if err := getJSONWith(&http.Client{Timeout: 2 * time.Second}, u+"/status", &ns); err != nil {
				t.Fatal(err)
			}
			if ns.Worker.Refused != 0 || ns.Dispatch.BadResults != 0 {
				t.Fatalf("%s counted %d refused tasks and %d bad results: a forbidden message reached it", id, ns.Worker.Refused, ns.Dispatch.BadResults)
			}
		}
		// Every result is still one the master asked for: a result for
		// a task nobody submitted would come from a faked task.
		for _, r := range results.all() {
			if r.Result != 3*r.Number {
				t.Fatalf("bad result %+v", r)
			}
		}
	})

	t.Run("bad input from an authorised submitter is refused cleanly", func(t *testing.T) {
		c := connect(t, server, nats.RootCAs(ca), nats.TLSHandshakeFirst(), s.as(t, "submitter"))
		for _, body := range []string{`{"number":"x"}`, `not json`, `{"number":1,"uuid":"not-a-uuid"}`, `{"number":1} {"number":2}`, `{"number":2000000000000000000}`,
			`{"number":` + strings.Repeat("9", 5000) + `}`, ``} {
			msg, err := c.nc.Request("tasks.submit."+s.pub(t, "submitter"), []byte(body), 5*time.Second)
			if err != nil {
				t.Fatalf("submission %.40q: %v", body, err)
			}
			var reply struct {
				Accepted bool   `json:"accepted"`
				Error    string `json:"error"`
			}
			if json.Unmarshal(msg.Data, &reply) != nil || reply.Accepted || reply.Error == "" {
				t.Fatalf("submission %.40q answered %s, want a refusal with a reason", body, msg.Data)
			}
		}
		before := results.count()
		testutil.Eventually(t, 10*time.Second, "results go on after bad input", func() bool { return results.count() > before+3 })
	})

	t.Run("malformed tasks from a node-role user are refused by the worker", func(t *testing.T) {
		c := connect(t, server, nats.RootCAs(ca), nats.TLSHandshakeFirst(), s.as(t, "node"))
		for _, body := range []string{`{"uuid":"x"}`, `not json`, fmt.Sprintf(`{"uuid":%q,"executor":"someone-else","number":1,"term":%d}`, uuid.NewString(), term)} {
			msg, err := c.nc.Request("tasks."+worker.ID, []byte(body), 5*time.Second)
			if err != nil {
				t.Fatalf("task %q: %v", body, err)
			}
			var ack struct {
				Accepted bool   `json:"accepted"`
				Reason   string `json:"reason"`
			}
			if json.Unmarshal(msg.Data, &ack) != nil || ack.Accepted || ack.Reason == "" {
				t.Fatalf("task %q answered %s, want a refusal with a reason", body, msg.Data)
			}
		}
	})

	if nats, err := exec.LookPath("nats"); err == nil {
		t.Run("the nats CLI as observer", func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), nats, "-s", server, "--tlsca", ca, "--tlsfirst", "--nkey", s.file("observer.nk"),
				"sub", "results", "--count", "1", "--timeout", "10s").CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"uuid"`) {
				t.Fatalf("nats sub results as observer: %v\n%s", err, out)
			}
			out, err = exec.CommandContext(t.Context(), nats, "-s", server, "--tlsca", ca, "--tlsfirst", "--nkey", s.file("observer.nk"),
				"pub", "results", "fake").CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Permissions Violation") {
				t.Fatalf("nats pub results as observer: %v\n%s", err, out)
			}
		})
	}

	t.Run("wrong credentials stop a node at start-up, at once, saying why", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		writeForeignPKI(t, other)
		expired := writeExpiredCert(t, s, t.TempDir())
		cases := []struct {
			name  string
			extra []string
			want  string
		}{
			{"no etcd user", []string{"--etcd-user", "", "--etcd-password-file", ""}, "etcd requires a user"},
			{"wrong etcd password", []string{"--etcd-password-file", s.file("route.secret")}, `etcd authentication failed as user "meshpool"`},
			{"etcd CA of another cluster", []string{"--etcd-cacert", filepath.Join(other, "ca.pem")}, "etcd TLS failed"},
			{"etcd client certificate from another CA", []string{"--etcd-cert", filepath.Join(other, "node.pem"), "--etcd-key", filepath.Join(other, "node-key.pem")}, "etcd TLS failed"},
			{"expired NATS certificate", []string{"--nats-cert", expired[0], "--nats-key", expired[1]}, "expired at"},
			{"NATS certificate from another CA", []string{"--nats-cert", filepath.Join(other, "node.pem"), "--nats-key", filepath.Join(other, "node-key.pem")}, "does not verify against the CA"},
			{"NATS certificate from the cluster CA without the route identity (etcd's)", []string{"--nats-cert", s.file("etcd.pem"), "--nats-key", s.file("etcd-key.pem")}, "incompatible key usage"},
			{"NATS certificate from the cluster CA without the route identity (an operator's)", []string{"--nats-cert", s.file("client.pem"), "--nats-key", s.file("client-key.pem")}, "incompatible key usage"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				begin := time.Now()
				p := startSecureNode(t, s, strangerIP, "stranger", c.extra...)
				code := p.wait(t, 10*time.Second)
				took := time.Since(begin)
				out := p.out.String()
				if code == 0 || !strings.Contains(out, c.want) {
					t.Fatalf("exit %d after %s, want an error saying %q:\n%s", code, took, c.want, tail(out, 2000))
				}
				if took > 5*time.Second {
					t.Errorf("took %s to fail, want a few seconds at most", took)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				t.Logf("%s (after %s)", lines[len(lines)-1], took.Round(time.Millisecond))
			})
		}
	})

	t.Run("a stranger's routes are refused and the cluster goes on", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		writeForeignPKI(t, other)
		wrongSecret := filepath.Join(t.TempDir(), "wrong.secret")
		if err := os.WriteFile(wrongSecret, []byte("not-the-route-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			extra  []string
			reason string
		}{
			{"wrong route secret", []string{"--route-secret-file", wrongSecret}, "route secrets differ"},
			// It trusts its own CA, as a stranger would, and has the secret.
			{"certificate from another CA", []string{"--nats-ca", filepath.Join(other, "ca.pem"),
				"--nats-cert", filepath.Join(other, "node.pem"), "--nats-key", filepath.Join(other, "node-key.pem")}, "TLS handshake failed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := results.count()
				p := startSecureNode(t, s, strangerIP, "stranger", c.extra...)
				testutil.Eventually(t, 15*time.Second, "the stranger logs why it is refused", func() bool {
					return strings.Contains(p.out.String(), c.reason)
				})
				// Registered with its etcd credentials, it is a member...
				testutil.Eventually(t, 10*time.Second, "the stranger registered", func() bool {
					st, ok := secureStatus(t, s)
					return ok && len(st.Members) == 4
				})
				// ...but no member routes to it, the three keep their
				// routes, and results go on.
				time.Sleep(1500 * time.Millisecond) // more than a route retry period
				for id, u := range urls {
					ns, err := httpStatus(u)
					if err != nil {
						t.Fatal(err)
					}
					if len(ns.Routes) != 2 || strings.Contains(strings.Join(ns.Routes, ","), "stranger") {
						t.Fatalf("%s routes: %v, want the two others only", id, ns.Routes)
					}
				}
				testutil.Eventually(t, 10*time.Second, "results go on", func() bool { return results.count() > before+5 })
				for _, r := range results.all() {
					if strings.HasPrefix(r.Executor, "stranger") {
						t.Fatalf("the stranger produced a result: %+v", r)
					}
				}
				p.kill()
			})
		}
	})

	// No secret in any log, /status, /nats/varz or /nats/connz.
	t.Run("no secret anywhere", func(t *testing.T) {
		var texts []string
		for _, n := range nodes {
			texts = append(texts, n.out.String())
		}
		for id, u := range urls {
			for _, path := range []string{"/status", "/nats/varz", "/nats/connz?auth=1", "/nats/routez", "/metrics"} {
				body := httpBody(t, u+path)
				if path == "/nats/varz" && !strings.Contains(body, `"tls_required": true`) {
					t.Errorf("%s %s does not say TLS is required", id, path)
				}
				texts = append(texts, body)
			}
		}
		for _, text := range texts {
			for f, sec := range s.secrets {
				if strings.Contains(text, sec) {
					t.Fatalf("the secret of %s appears in:\n%s", f, tail(text[max(0, strings.Index(text, sec)-300):], 800))
				}
			}
		}
		if !strings.Contains(texts[0], "Trying to connect to route") {
			t.Fatal("the node log is not at debug level: the search is blind")
		}
	})
}

// writeForeignPKI writes a CA and a node certificate for the stranger's IP
// from a CA the cluster does not trust.
func writeForeignPKI(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("another CA", pki.ValidFor(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ips, _ := pki.IPs(strangerIP)
	leaf, err := ca.Issue("meshpool-node", ips, pki.ValidFor(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCert(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if err := leaf.Write(filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")); err != nil {
		t.Fatal(err)
	}
}

// writeExpiredCert writes an expired certificate for the stranger's IP,
// signed by the cluster CA (secure-setup keeps its key in ca-key.pem).
func writeExpiredCert(t *testing.T, s secureSetup, dir string) [2]string {
	t.Helper()
	ca, err := pki.LoadCA(s.file("ca.pem"), s.file("ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ips, _ := pki.IPs(strangerIP)
	leaf, err := ca.Issue("meshpool-node", ips, pki.Validity{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	files := [2]string{filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")}
	if err := leaf.Write(files[0], files[1]); err != nil {
		t.Fatal(err)
	}
	return files
}

// natsClient is a connection that records the server's asynchronous errors.
type natsClient struct {
	nc   *nats.Conn
	errs chan error
}

func connect(t *testing.T, url string, opts ...nats.Option) natsClient {
	t.Helper()
	c := natsClient{errs: make(chan error, 32)}
	nc, err := nats.Connect(url, append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case c.errs <- err:
		default:
		}
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func (c natsClient) expectViolation(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-c.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
			t.Fatalf("error %v, want a permission violation for %s", err, what)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("no permission violation for %s", what)
	}
}

// resultLog keeps every result received.
type resultLog struct {
	mu      sync.Mutex
	results []result
}

func newResultLog() *resultLog { return &resultLog{} }

func (l *resultLog) add(m *nats.Msg) {
	var r result
	if json.Unmarshal(m.Data, &r) == nil {
		l.mu.Lock()
		l.results = append(l.results, r)
		l.mu.Unlock()
	}
}

func (l *resultLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.results)
}

func (l *resultLog) with(uuid string) int {
	n := 0
	for _, r := range l.all() {
		if r.UUID == uuid {
			n++
		}
	}
	return n
}

func (l *resultLog) all() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

func httpCode(t *testing.T, url string) int {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close() // /stream never ends: the status is enough
	return resp.StatusCode
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDevSecure runs `meshpool dev --secure` and the commands it logs to
// try it: the one-command secure set-up works end to end, and its log
// names the secret files, never a secret.
func TestDevSecure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secure")
	// Fixed ports below the ephemeral range (etcd 23994-23995 on 127.0.0.1,
	// the nodes on dev's 127.0.0.2-3), apart from TestDevCluster's defaults.
	dev := start(t, "meshpool dev --secure", binary, "dev", "--secure", "--secure-dir", dir, "--nodes", "2",
		"--etcd-port", "23994", "--client-port", "14222", "--cluster-port", "16222", "--http-port", "18222",
		"--task-interval", "200ms", "--work-time", "10ms-50ms", "--log-format", "json")
	cmds := map[string]string{}
	testutil.Eventually(t, 20*time.Second, "dev logs the commands to try", func() bool {
		for _, line := range strings.Split(dev.out.String(), "\n") {
			var l struct{ Msg, Cmd string }
			if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, "try: ") {
				cmds[strings.TrimPrefix(l.Msg, "try: ")] = l.Cmd
			}
		}
		return len(cmds) == 5
	})
	runCmd := func(cmd string) (string, error) {
		cmd = strings.Replace(cmd, "meshpool ", binary+" ", 1)
		out, err := exec.CommandContext(t.Context(), "sh", "-c", cmd).CombinedOutput()
		return string(out), err
	}
	testutil.Eventually(t, 20*time.Second, "the logged submit command gets its result", func() bool {
		out, err := runCmd(cmds["submit as the submitter"] + " --timeout 3s")
		return err == nil && strings.Contains(out, "42*3 = 126")
	})
	out, err := runCmd(cmds["the status from etcd"])
	if err != nil || !strings.Contains(out, "2 members") {
		t.Fatalf("the logged status command: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("nats"); err == nil {
		if out, err := runCmd(cmds["a refusal: the observer may not publish"]); err == nil || !strings.Contains(out, "Permissions Violation") {
			t.Fatalf("the observer published: %v\n%s", err, out)
		}
		if out, err := runCmd(cmds["a refusal: no credentials"]); err == nil || !strings.Contains(out, "Authorization Violation") {
			t.Fatalf("published without credentials: %v\n%s", err, out)
		}
		if out, err := runCmd(cmds["follow results as the observer"] + " --count 1"); err != nil || !strings.Contains(out, `"uuid"`) {
			t.Fatalf("the observer did not get a result: %v\n%s", err, out)
		}
	}
	dev.signal(syscall.SIGTERM)
	if code := dev.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("dev exit %d", code)
	}
	log := dev.out.String()
	for _, f := range []string{"route.secret", "etcd.password", "etcd-root.password", "node.nk", "submitter.nk", "observer.nk"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(b)); strings.Contains(log, s) {
			t.Fatalf("dev logged the secret of %s", f)
		}
	}
}

// TestVagrantSecureEnv checks that every variable of the Vagrant secure
// variant's env file is a flag of meshpool node.
func TestVagrantSecureEnv(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/vagrant/meshpool-secure.env"))
	if err != nil {
		t.Fatal(err)
	}
	help, _, code := run(t, "node", "--help")
	if code != 0 {
		t.Fatalf("node --help: exit %d", code)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, _, ok := strings.Cut(line, "=")
		if strings.HasPrefix(line, "#") || !ok {
			continue
		}
		flag := "-" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, "MESHPOOL_")), "_", "-") + " "
		if !strings.Contains(help, flag) {
			t.Errorf("%s: meshpool node has no flag %s", key, flag)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d variables in meshpool-secure.env", n)
	}
}

// TestSecurityFlagErrors: a security setting that cannot work is a one-line
// usage error (exit 2) before anything starts, and shows no secret.
func TestSecurityFlagErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "users")
	if err := os.WriteFile(plain, []byte("alice submitter hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := []string{"node", "--advertise", "127.0.0.99"}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"etcd user without password", append(node, "--etcd-user", "meshpool"), nil, "needs a password"},
		{"etcd password without user", append(node, "--etcd-password-file", pw), nil, "needs --etcd-user"},
		{"etcd password in file and env", append(node, "--etcd-user", "u", "--etcd-password-file", pw), []string{"MESHPOOL_ETCD_PASSWORD=x"}, "not both"},
		{"etcd cert without key", append(node, "--etcd-cert", pw), nil, "--etcd-key"},
		{"mixed etcd schemes", append(node, "--etcd", "https://127.0.0.1:1,http://127.0.0.1:2"), nil, "all https:// or none"},
		{"route secret without TLS", append(node, "--route-secret-file", pw), nil, "needs TLS"},
		{"users without TLS", append(node, "--nats-users", plain), nil, "bcrypt hash"},
		{"NATS cert without CA", append(node, "--nats-cert", pw, "--nats-key", pw), nil, "all three"},
		{"missing route secret file", append(node, "--route-secret-file", filepath.Join(dir, "nope")), nil, "route secret file"},
		{"bad http addr", append(node, "--http-addr", "localhost"), nil, "http address"},
		{"bad metrics addr", append(node, "--metrics-addr", "9222"), nil, "metrics address"},
		{"submit: user without password file", []string{"submit", "--nats-user", "x", "--number", "1"}, nil, "needs --nats-password-file"},
		{"status: etcd user without password", []string{"status", "--etcd-user", "x"}, nil, "needs a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), binary, tt.args...)
			cmd.Env = append(append(os.Environ(), "MESHPOOL_ETCD=", "MESHPOOL_ETCD_PASSWORD="), tt.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2: %s", err, out)
			}
			if s := strings.TrimSpace(string(out)); !strings.Contains(s, tt.want) || strings.Count(s, "\n") > 0 || strings.Contains(s, "hunter2") {
				t.Fatalf("output %q: want one line saying %q, without the secret", s, tt.want)
			}
		})
	}
}
