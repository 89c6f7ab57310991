package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/embedetcd"
	"github.com/meshpool/meshpool/internal/secret"
	"github.com/meshpool/meshpool/node"
)

// devSecureFiles writes the throw-away CA and secrets for n dev nodes
// (127.0.0.2, ...) and etcd (127.0.0.1) into a temp dir, or into dir: made
// if needed, reused if it already holds them.
func devSecureFiles(dir string, n int) (secureFiles, error) {
	if dir != "" {
		if _, err := os.Stat(filesIn(dir).CA); err == nil {
			cert, _ := filesIn(dir).NodeCert("127.0.0." + strconv.Itoa(n+1))
			if _, err := os.Stat(cert); err != nil {
				return secureFiles{}, fmt.Errorf("%s holds a CA but no certificate for node %d (%s): it was made for fewer nodes "+
					"or by an older meshpool; use another --secure-dir", dir, n, filepath.Base(cert))
			}
			f := filesIn(dir)
			if _, err := os.Stat(f.UserSecret(broker.RoleSubmitter)); err != nil {
				f.Passwords = true // made by secure-setup --passwords
			}
			return f, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return secureFiles{}, err
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "meshpool-dev-secure-"); err != nil {
			return secureFiles{}, fmt.Errorf("cannot make a directory for the secrets: %w", err)
		}
	}
	var ips []string
	for i := range n {
		ips = append(ips, "127.0.0."+strconv.Itoa(i+2))
	}
	return writeSecureFiles(dir, ips, []string{"127.0.0.1"}, false)
}

// devSecure turns etcd's authentication on and sets the nodes' security:
// etcd over TLS with the meshpool user; NATS with TLS, the route secret
// and the users file. Each node's certificates are set by devNodeCert.
func devSecure(ctx context.Context, etcd *embedetcd.Server, f secureFiles, cfg *node.Config) error {
	etcdPW, err := secret.ReadFile("etcd password", f.EtcdPW)
	if err != nil {
		return err
	}
	rootPW, err := secret.ReadFile("etcd root password", f.EtcdRootPW)
	if err != nil {
		return err
	}
	if err := etcd.EnableAuth(ctx, rootPW, embedetcd.User{Name: f.EtcdUser, Password: etcdPW, Prefix: cfg.Prefix}); err != nil {
		return err
	}
	routePW, err := secret.ReadFile("route secret", f.RouteSecret)
	if err != nil {
		return err
	}
	users, err := broker.ReadUsers(f.Users)
	if err != nil {
		return err
	}
	cfg.Etcd = []string{"https://" + etcd.Endpoint()}
	cfg.EtcdCACert = f.CA
	cfg.EtcdUser, cfg.EtcdPassword = f.EtcdUser, etcdPW
	cfg.NATS = broker.Security{CAFile: f.CA, RoutePassword: routePW, Users: users, TLSFirst: true}
	return nil
}

// devNodeCert sets c's certificate, for NATS and etcd, to its node's own.
func devNodeCert(f secureFiles, c *node.Config) {
	cert, key := f.NodeCert(c.Advertise)
	c.EtcdCert, c.EtcdKey = cert, key
	c.NATS.CertFile, c.NATS.KeyFile = cert, key
}

// logSecureTryOut logs the commands to try the secure cluster with. They
// name the files that hold the secrets, never a secret.
func logSecureTryOut(log *slog.Logger, f secureFiles, cfg node.Config) {
	server := "tls://127.0.0.2:" + strconv.Itoa(cfg.ClientPort)
	log.Info("secure cluster starting; CA, certificates and secrets in "+f.Dir,
		"etcd", cfg.Etcd[0], "etcd_user", f.EtcdUser, "nats_users", "node, submitter, observer")
	natsAs := func(role broker.Role) string { // the nats CLI's credentials
		if f.Passwords {
			return fmt.Sprintf("NATS_PASSWORD=\"$(cat %s)\" nats -s %s --tlsca %s --tlsfirst --user %s", f.UserSecret(role), server, f.CA, role)
		}
		return fmt.Sprintf("nats -s %s --tlsca %s --tlsfirst --nkey %s", server, f.CA, f.UserSecret(role))
	}
	submitAs := "--nats-nkey " + f.UserSecret(broker.RoleSubmitter)
	if f.Passwords {
		submitAs = "--nats-user submitter --nats-password-file " + f.UserSecret(broker.RoleSubmitter)
	}
	cmds := []struct{ what, cmd string }{
		{"follow results as the observer", natsAs(broker.RoleObserver) + " sub results"},
		{"submit as the submitter", fmt.Sprintf("meshpool submit --server %s --nats-ca %s %s --number 42 --wait", server, f.CA, submitAs)},
		{"a refusal: the observer may not publish", natsAs(broker.RoleObserver) + " pub results fake"},
		{"a refusal: no credentials", fmt.Sprintf("nats -s %s --tlsca %s --tlsfirst pub tasks.submit '{\"number\":1}'", server, f.CA)},
		{"the status from etcd", fmt.Sprintf("meshpool status --etcd %s --etcd-cacert %s --etcd-cert %s --etcd-key %s --etcd-user %s --etcd-password-file %s",
			cfg.Etcd[0], f.CA, f.ClientCert, f.ClientKey, f.EtcdUser, f.EtcdPW)},
	}
	for _, c := range cmds {
		log.Info("try: "+c.what, "cmd", c.cmd)
	}
}
