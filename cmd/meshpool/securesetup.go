package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/pki"
	"github.com/meshpool/meshpool/internal/tlsfiles"
)

// secureFiles are the files secure-setup writes into one directory.
type secureFiles struct {
	Dir                   string
	CA, CAKey             string // the cluster CA (its key: keep it offline)
	ClientCert, ClientKey string // operators' etcd client certificate (meshpool status, etcdctl)
	EtcdCert, EtcdKey     string // etcd's server certificate, for the etcd IPs
	RouteSecret           string // the route secret
	Users                 string // the NATS users file (public nkeys, or bcrypt hashes)
	Passwords             bool   // the NATS users have passwords, not nkeys
	EtcdUser              string // etcd user name for the nodes
	EtcdPW, EtcdRootPW    string // etcd passwords of that user and of root
}

func filesIn(dir string) secureFiles {
	p := func(name string) string { return filepath.Join(dir, name) }
	return secureFiles{
		Dir: dir, CA: p("ca.pem"), CAKey: p("ca-key.pem"), ClientCert: p("client.pem"), ClientKey: p("client-key.pem"),
		EtcdCert: p("etcd.pem"), EtcdKey: p("etcd-key.pem"), RouteSecret: p("route.secret"), Users: p("users"),
		EtcdUser: "meshpool", EtcdPW: p("etcd.password"), EtcdRootPW: p("etcd-root.password"),
	}
}

// The NATS users secure-setup makes, one per role but node's own
// in-process one.
var setupUsers = []broker.Role{broker.RoleNode, broker.RoleSubmitter, broker.RoleObserver}

// UserSecret returns the file holding the secret of the NATS user of
// role: its nkey seed, role.nk, or its password, role.password.
func (f secureFiles) UserSecret(role broker.Role) string {
	if f.Passwords {
		return filepath.Join(f.Dir, string(role)+".password")
	}
	return filepath.Join(f.Dir, string(role)+".nk")
}

// NodeCert returns the certificate and key files of the node at ip: its
// NATS certificate, which carries the route identity, and its etcd client
// certificate.
func (f secureFiles) NodeCert(ip string) (cert, key string) {
	return filepath.Join(f.Dir, "node-"+ip+".pem"), filepath.Join(f.Dir, "node-"+ip+"-key.pem")
}

// writeSecureFiles makes a CA, a certificate for each of nodeIPs, an etcd
// and a client certificate, a route secret and the three NATS users (with
// nkeys, or with random passwords), in dir (created 0700). It refuses to
// overwrite.
func writeSecureFiles(dir string, nodeIPs, etcdIPs []string, passwords bool) (secureFiles, error) {
	f := filesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("cannot make %s: %w", dir, err)
	}
	if _, err := os.Stat(f.CA); err == nil {
		return f, fmt.Errorf("%s already holds a CA (ca.pem): use another directory", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	ca, err := pki.NewCA("meshpool cluster CA", pki.ValidFor(pki.CALifetime))
	if err != nil {
		return f, err
	}
	if err := ca.WriteCert(f.CA); err != nil {
		return f, err
	}
	if err := ca.WriteKey(f.CAKey); err != nil {
		return f, err
	}
	if err := issueLeaves(ca, f, nodeIPs, etcdIPs); err != nil {
		return f, err
	}
	for _, file := range []string{f.RouteSecret, f.EtcdPW, f.EtcdRootPW} {
		if err := writeSecret(file, rand.Text()); err != nil {
			return f, err
		}
	}
	f.Passwords = passwords
	var users strings.Builder
	users.WriteString("# meshpool NATS users: <public nkey> <role>, or <name> <role> <bcrypt hash of the password>.\n" +
		"# Names: letters, digits, _ and -. Roles: node (everything), submitter (submits on tasks.submit.<its name or nkey>; reads results,\n" +
		"# events, its replies), observer (reads results).\n")
	for _, role := range setupUsers {
		line, secret, err := newUser(role, passwords)
		if err != nil {
			return f, err
		}
		if err := writeSecret(f.UserSecret(role), secret); err != nil {
			return f, err
		}
		fmt.Fprintf(&users, "# %s: its secret is in %s\n%s\n", role, filepath.Base(f.UserSecret(role)), line)
	}
	if err := os.WriteFile(f.Users, []byte(users.String()), 0o600); err != nil {
		return f, err
	}
	return f, nil
}

// issueLeaves writes, all issued by ca and valid for pki.LeafLifetime: a
// node certificate for each of nodeIPs (the only certificates with the
// route identity), a server-only certificate for etcd's etcdIPs, and a
// client-only certificate for operators.
func issueLeaves(ca *pki.CA, f secureFiles, nodeIPs, etcdIPs []string) error {
	type leaf struct {
		use       pki.Use
		name      string
		ips       []string
		cert, key string
	}
	leaves := []leaf{{pki.Server, "etcd", etcdIPs, f.EtcdCert, f.EtcdKey}, {pki.Client, "meshpool-operator", nil, f.ClientCert, f.ClientKey}}
	for _, ip := range nodeIPs {
		cert, key := f.NodeCert(ip)
		leaves = append(leaves, leaf{pki.Node, "meshpool-node " + ip, []string{ip}, cert, key})
	}
	for _, c := range leaves {
		ips, err := pki.IPs(c.ips...)
		if err != nil {
			return err
		}
		l, err := ca.IssueFor(c.use, c.name, ips, pki.ValidFor(pki.LeafLifetime))
		if err != nil {
			return err
		}
		if err := l.Write(c.cert, c.key); err != nil {
			return err
		}
	}
	return nil
}

// renewLeaves issues new node, etcd and client certificates in a directory
// writeSecureFiles filled, from its CA (ca.pem, ca-key.pem), and leaves the
// CA and the secrets as they are. It returns the CA's expiry.
func renewLeaves(dir string, nodeIPs, etcdIPs []string) (secureFiles, time.Time, error) {
	f := filesIn(dir)
	ca, err := pki.LoadCA(f.CA, f.CAKey)
	if err != nil {
		return f, time.Time{}, fmt.Errorf("cannot load the CA to renew with: %w", err)
	}
	if time.Now().After(ca.Cert.NotAfter) {
		return f, time.Time{}, fmt.Errorf("the CA in %s expired at %s: make a new one (a new directory) and roll it out",
			f.CA, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return f, ca.Cert.NotAfter, issueLeaves(ca, f, nodeIPs, etcdIPs)
}

// newUser makes a NATS user of role: an nkey (the users file's line has
// its public key; the secret is its seed) or a random password (the line
// has its bcrypt hash).
func newUser(role broker.Role, password bool) (line, secret string, err error) {
	if password {
		pw := rand.Text()
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("%s %s %s", role, role, hash), pw, nil
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", "", err
	}
	return pub + " " + string(role), string(seed), nil
}

func writeSecret(file, s string) error {
	if err := os.WriteFile(file, []byte(s+"\n"), 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", file, err)
	}
	return nil
}

func (m *Main) runSecureSetup(_ context.Context, args []string) error {
	dir, renew, passwords := "", false, false
	var nodeIPs, etcdIPs listFlag
	fs := newFlagSet("secure-setup", "Writes what a secure cluster needs into a new directory: a cluster CA, a certificate for\n"+
		"each node IP, an etcd server certificate, an operators' client certificate, a route secret, and the NATS users node, submitter and\n"+
		"observer with nkeys (or --passwords). Secrets go into files (mode 0600), never to the terminal. The CA lasts\n"+
		"10 years, the certificates 1 year: --renew issues new ones from the same CA. See docs/security.md.", m.Stdout)
	fs.StringVar(&dir, "dir", "", "directory to create and fill (required)")
	fs.BoolVar(&renew, "renew", false, "in a --dir secure-setup filled, write new node, etcd and client certificates from its CA; the CA and the secrets stay")
	fs.BoolVar(&passwords, "passwords", false, "give the NATS users random passwords (bcrypt hashes in users) instead of nkeys: for clients that cannot use nkeys; each failed login then costs the servers about 60 ms of CPU")
	fs.Var(&nodeIPs, "node-ips", "the nodes' advertise IPs, comma-separated (one certificate for each: node-IP.pem)")
	fs.Var(&etcdIPs, "etcd-ips", "etcd's IPs, comma-separated, for its server certificate")
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	if dir == "" || len(nodeIPs) == 0 || len(etcdIPs) == 0 {
		return usagef("secure-setup: --dir, --node-ips and --etcd-ips are required")
	}
	for _, ips := range []struct {
		flag string
		ips  []string
	}{{"--node-ips", nodeIPs}, {"--etcd-ips", etcdIPs}} {
		if _, err := pki.IPs(ips.ips...); err != nil {
			return usagef("secure-setup: %s: %w", ips.flag, err)
		}
	}
	if renew {
		f, caNotAfter, err := renewLeaves(dir, nodeIPs, etcdIPs)
		if err != nil {
			return fmt.Errorf("secure-setup: %w", err)
		}
		fmt.Fprintf(m.Stdout, "wrote new node-IP.pem, node-IP-key.pem, etcd.pem, etcd-key.pem, client.pem, client-key.pem into %s from its CA (which expires at %s);\n"+
			"restart the nodes one at a time, and etcd, to load them\n", f.Dir, caNotAfter.UTC().Format(time.RFC3339))
		return nil
	}
	f, err := writeSecureFiles(dir, nodeIPs, etcdIPs, passwords)
	if err != nil {
		return fmt.Errorf("secure-setup: %w", err)
	}
	printSecureFiles(m.Stdout, f)
	return nil
}

func printSecureFiles(w io.Writer, f secureFiles) {
	fmt.Fprintf(w, `wrote into %s:
  ca.pem, ca-key.pem          the cluster CA (keep ca-key.pem offline: it signs certificates the cluster trusts)
  node-IP.pem, node-IP-key.pem
                              each node's own certificate (copy only its own to a node): NATS TLS
                              (--nats-cert/--nats-key) with the route identity %s, and etcd client certificate
  etcd.pem, etcd-key.pem      etcd's server certificate, server only (etcd --cert-file/--key-file, --trusted-ca-file ca.pem --client-cert-auth)
  client.pem, client-key.pem  operators' etcd client certificate, client only (meshpool status --etcd-cert/--etcd-key)
  route.secret                the route secret (--route-secret-file)
  users                       NATS users (--nats-users): node, submitter and observer
  etcd.password               password of etcd user %q (--etcd-user %s --etcd-password-file); etcd-root.password for root
`, f.Dir, tlsfiles.NodeURI, f.EtcdUser, f.EtcdUser)
	if f.Passwords {
		fmt.Fprintf(w, "  node.password, submitter.password, observer.password\n                              the NATS users' passwords (--nats-user NAME --nats-password-file FILE)\n")
		return
	}
	fmt.Fprintf(w, "  node.nk, submitter.nk, observer.nk\n                              the NATS users' nkey seeds (--nats-nkey FILE; nats --nkey FILE)\n")
}
