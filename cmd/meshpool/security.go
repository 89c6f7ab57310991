package main

import (
	"flag"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/secret"
	"github.com/meshpool/meshpool/internal/tlsfiles"
	"github.com/meshpool/meshpool/node"
)

// etcdPasswordEnv holds the etcd password itself, for those who prefer the
// environment to a file. There is no flag for it: it would show in ps.
const etcdPasswordEnv = "MESHPOOL_ETCD_PASSWORD"

// etcdSecurityFlags are the etcd TLS and auth flags of every command that
// talks to etcd.
type etcdSecurityFlags struct {
	caCert, cert, key, user, passwordFile string
}

func (f *etcdSecurityFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.caCert, "etcd-cacert", "", "PEM file of the CA of etcd's server certificate (turns on TLS to etcd)")
	fs.StringVar(&f.cert, "etcd-cert", "", "PEM file of the client certificate for etcd (with --etcd-key)")
	fs.StringVar(&f.key, "etcd-key", "", "PEM file of the client certificate's key")
	fs.StringVar(&f.user, "etcd-user", "", "etcd user name (its password from --etcd-password-file or "+etcdPasswordEnv+")")
	fs.StringVar(&f.passwordFile, "etcd-password-file", "", "file holding the etcd user's password")
}

// options returns the etcd client options, with the password read from
// its file or the environment.
func (f *etcdSecurityFlags) options(endpoints []string, dialTimeout time.Duration, getenv func(string) string) (etcdclient.Options, error) {
	o := etcdclient.Options{Endpoints: endpoints, DialTimeout: dialTimeout, CACert: f.caCert, Cert: f.cert, Key: f.key, Username: f.user}
	env := getenv(etcdPasswordEnv)
	switch {
	case f.passwordFile != "" && env != "":
		return o, usagef("give the etcd password in --etcd-password-file or %s, not both", etcdPasswordEnv)
	case f.passwordFile != "":
		pw, err := secret.ReadFile("etcd password", f.passwordFile)
		if err != nil {
			return o, usageError{err}
		}
		o.Password = pw
	default:
		o.Password = env
	}
	if o.Password != "" && o.Username == "" {
		return o, usagef("an etcd password needs --etcd-user")
	}
	if o.Username != "" && o.Password == "" {
		return o, usagef("--etcd-user %q needs a password: --etcd-password-file or %s", o.Username, etcdPasswordEnv)
	}
	if err := o.Validate(); err != nil {
		return o, usageError{err}
	}
	return o, nil
}

// apply sets the node config's etcd security fields.
func (f *etcdSecurityFlags) apply(cfg *node.Config, getenv func(string) string) error {
	o, err := f.options(cfg.Etcd, 5*time.Second, getenv)
	if err != nil {
		return err
	}
	cfg.EtcdCACert, cfg.EtcdCert, cfg.EtcdKey, cfg.EtcdUser, cfg.EtcdPassword = o.CACert, o.Cert, o.Key, o.Username, o.Password
	return nil
}

// natsServerFlags lock a node's embedded NATS server down.
type natsServerFlags struct {
	ca, cert, key, routeSecretFile, usersFile string
	tlsFirst                                  bool
}

func (f *natsServerFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.ca, "nats-ca", "", "PEM file of the cluster CA: routes must present a certificate from it (turns on NATS TLS)")
	fs.StringVar(&f.cert, "nats-cert", "", "PEM file of this node's certificate, issued by the cluster CA for its advertise IP")
	fs.StringVar(&f.key, "nats-key", "", "PEM file of this node's certificate's key")
	fs.StringVar(&f.routeSecretFile, "route-secret-file", "", "file holding the cluster's route secret: only nodes with it may route in")
	fs.StringVar(&f.usersFile, "nats-users", "", "file listing NATS client users and roles (node, submitter, observer); see docs/security.md")
	fs.BoolVar(&f.tlsFirst, "nats-tls-first", true, "with NATS TLS, clients must start TLS at once (nats.go TLSHandshakeFirst, nats --tlsfirst): "+
		"the server sends nothing before; false sends its INFO (version, every node's client URL) in clear first, for clients that cannot")
}

// security reads the files into a broker.Security. The TLS files are read
// here too, so a missing or unreadable one is a usage error.
func (f *natsServerFlags) security() (broker.Security, error) {
	sec := broker.Security{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, TLSFirst: f.tlsFirst}
	var err error
	if f.ca != "" && f.cert != "" && f.key != "" { // else the config check says all three
		if _, err := tlsfiles.CAPool(f.ca); err != nil {
			return sec, usagef("--nats-ca: %w", err)
		}
		if _, err := tlsfiles.KeyPair(f.cert, f.key); err != nil {
			return sec, usagef("--nats-cert/--nats-key: %w", err)
		}
	}
	if f.routeSecretFile != "" {
		if sec.RoutePassword, err = secret.ReadFile("route secret", f.routeSecretFile); err != nil {
			return sec, usageError{err}
		}
	}
	if f.usersFile != "" {
		if sec.Users, err = broker.ReadUsers(f.usersFile); err != nil {
			return sec, usageError{err}
		}
	}
	return sec, nil
}

// natsClientFlags are how submit and watch connect: TLS with the cluster
// CA, and a user with a password file or an nkey seed file.
type natsClientFlags struct {
	ca, user, passwordFile, nkeyFile string
	tlsFirst                         bool
}

func (f *natsClientFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.ca, "nats-ca", "", "PEM file of the cluster CA, to verify the node's certificate (turns on TLS)")
	fs.StringVar(&f.user, "nats-user", "", "NATS user name (with --nats-password-file)")
	fs.StringVar(&f.passwordFile, "nats-password-file", "", "file holding the NATS user's password")
	fs.StringVar(&f.nkeyFile, "nats-nkey", "", "file holding an nkey seed (SU...), instead of a user and password")
	fs.BoolVar(&f.tlsFirst, "nats-tls-first", true, "with --nats-ca, start TLS at once, before the server's INFO (as nodes expect unless run with --nats-tls-first=false)")
}

func (f *natsClientFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if f.ca != "" {
		// Read now, so a missing file is a usage error; hardened like
		// every TLS config meshpool builds.
		tc, err := tlsfiles.ClientConfig(f.ca, "", "")
		if err != nil {
			return nil, usagef("--nats-ca: %w", err)
		}
		opts = append(opts, nats.Secure(tc))
		if f.tlsFirst {
			opts = append(opts, nats.TLSHandshakeFirst())
		}
	}
	switch {
	case f.nkeyFile != "" && f.user != "":
		return nil, usagef("give --nats-user or --nats-nkey, not both")
	case f.nkeyFile != "":
		if err := secret.Check("nkey seed", f.nkeyFile); err != nil {
			return nil, usagef("--nats-nkey: %w", err)
		}
		o, err := nats.NkeyOptionFromSeed(f.nkeyFile)
		if err != nil {
			return nil, usagef("--nats-nkey: %w", err)
		}
		opts = append(opts, o)
	case f.user != "":
		if f.passwordFile == "" {
			return nil, usagef("--nats-user %q needs --nats-password-file", f.user)
		}
		pw, err := secret.ReadFile("NATS password", f.passwordFile)
		if err != nil {
			return nil, usageError{err}
		}
		opts = append(opts, nats.UserInfo(f.user, pw))
	case f.passwordFile != "":
		return nil, usagef("--nats-password-file needs --nats-user")
	}
	return opts, nil
}
