package broker

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshpool/meshpool/internal/secret"
	"github.com/meshpool/meshpool/internal/tlsfiles"
	"github.com/meshpool/meshpool/message"
)

// Security locks the embedded server down. The zero value locks nothing:
// anyone who reaches the ports may route in, connect, publish and subscribe.
type Security struct {
	// CAFile is the cluster CA; CertFile and KeyFile are this node's
	// certificate (issued by the CA for Host, usable as TLS server and
	// client) and key. With them the client port speaks TLS only, and
	// routes speak TLS both ways: each side must present a certificate
	// from the CA, so only nodes with one can route in.
	CAFile, CertFile, KeyFile string
	// RoutePassword is the cluster's route secret: routes authenticate as
	// user RouteUser with it, and a node without it is refused. Requires TLS
	// (it would travel in clear). Never logged.
	RoutePassword string
	// Users may connect to the client port, each with the permissions of
	// its role. With none, clients need no credentials. Requires TLS.
	Users []User
	// TLSFirst makes clients start TLS at once: the server sends nothing
	// before the handshake (its INFO names its version and every node's
	// client URL). Clients must be told (nats.go TLSHandshakeFirst).
	TLSFirst bool
}

// RouteUser is the user name routes authenticate with.
const RouteUser = "route"

// enabled reports whether any of the settings is on.
func (s Security) enabled() bool {
	return s.CertFile != "" || s.RoutePassword != "" || len(s.Users) > 0
}

// Validate reports what is missing or contradictory, without reading the
// files (Start reads and checks them). Errors wrap ErrInvalidConfig.
func (s Security) Validate() error {
	var errs []error
	if s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
		if s.CAFile == "" || s.CertFile == "" || s.KeyFile == "" {
			errs = append(errs, errors.New("NATS TLS needs the CA, the certificate and the key file, all three"))
		}
	}
	if s.CertFile == "" && s.RoutePassword != "" {
		errs = append(errs, errors.New("a route secret needs TLS (it would travel in clear): give the CA, certificate and key files"))
	}
	if s.CertFile == "" && len(s.Users) > 0 {
		errs = append(errs, errors.New("NATS users need TLS (passwords would travel in clear): give the CA, certificate and key files"))
	}
	for _, u := range s.Users {
		if err := u.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Role is what a NATS user may do.
type Role string

// The roles. A node needs everything; the others are for people and tools.
const (
	// RoleNode may publish and subscribe on every subject: tasks.<id>,
	// results, events, tasks.submit, every tasks.submit.<user> and the
	// request inboxes. Each node's own in-process connection has it; give
	// it to operators' tools only.
	RoleNode Role = "node"
	// RoleSubmitter may publish its own submission subject,
	// tasks.submit.<its name or nkey> (message.SubmitSubject), and the
	// operations on tasks (tasks.get, tasks.list, tasks.cancel,
	// tasks.retry, tasks.schedule.*), and subscribe results, events and
	// its own reply inboxes, _INBOX.<its name or nkey>.> (message.InboxPrefix;
	// the Go client asks there): submit work, wait for its answer and its
	// result, look at, cancel and retry any task, manage schedules. It may
	// not publish tasks.submit or another user's tasks.submit.<name> (the
	// master counts submissions by the name in their subject), tasks.<id>
	// (a task or a cancel in the master's name) or results (a fake result).
	RoleSubmitter Role = "submitter"
	// RoleObserver may read: subscribe results, and ask tasks.get,
	// tasks.list and tasks.schedule.list (their answers come to its own
	// reply inboxes, _INBOX.<its name or nkey>.>, which it may subscribe).
	// It may not submit, cancel or retry, nor read another's answers.
	RoleObserver Role = "observer"
)

// permissions returns the server permissions of role for user, its name or
// public nkey; nil means all.
func (r Role) permissions(user string) *server.Permissions {
	switch r {
	case RoleSubmitter:
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{message.SubmitSubject(user), message.SubjectGet, message.SubjectList,
				message.SubjectCancel, message.SubjectRetry, message.SubjectScheduleAdd, message.SubjectScheduleRemove, message.SubjectScheduleList}},
			Subscribe: &server.SubjectPermission{Allow: []string{message.SubjectResults, message.SubjectEvents, message.InboxPrefix(user) + ".>"}},
		}
	case RoleObserver:
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{message.SubjectGet, message.SubjectList, message.SubjectScheduleList}},
			Subscribe: &server.SubjectPermission{Allow: []string{message.SubjectResults, message.InboxPrefix(user) + ".>"}},
		}
	default:
		return nil
	}
}

// User is one client identity: a name and a bcrypt hash of its password,
// or an nkey (its public key, "U..."), and a role.
type User struct {
	Name         string
	PasswordHash string // bcrypt, "$2a$..."
	Nkey         string // public user nkey, instead of Name and PasswordHash
	Role         Role
}

// inProcessUser is the user of each node's own in-process connection. It
// may connect only in process, with a password made at start that never
// leaves the process.
const inProcessUser = "_meshpool_node"

func (u User) validate() error {
	switch u.Role {
	case RoleNode, RoleSubmitter, RoleObserver:
	default:
		return fmt.Errorf("user %q: role %q: want node, submitter or observer", u.id(), u.Role)
	}
	if u.Nkey != "" {
		if !nkeys.IsValidPublicUserKey(u.Nkey) {
			return fmt.Errorf("user %q: not a public user nkey", u.Nkey)
		}
		return nil
	}
	if u.Name == "" || u.Name == inProcessUser || u.Name == RouteUser {
		return fmt.Errorf("user %q: name reserved or empty", u.Name)
	}
	if err := message.ValidSubmitter(u.Name); err != nil {
		return fmt.Errorf("user name %w", err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$2") {
		return fmt.Errorf("user %q: the password must be a bcrypt hash ($2a$...), not the password itself", u.Name)
	}
	return nil
}

func (u User) id() string {
	if u.Nkey != "" {
		return u.Nkey
	}
	return u.Name
}

// ReadUsers reads a users file. Each line that is not blank or a comment
// (#) is
//
//	<name> <role> <bcrypt hash of the password>
//	<public user nkey, U...> <role>
//
// with role node, submitter or observer. Every node loads the same file;
// it holds no password, but keep it readable by meshpool only.
func ReadUsers(file string) ([]User, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the NATS users file: %w", err)
	}
	defer f.Close()
	var users []User
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var u User
		switch {
		case len(fields) == 2 && strings.HasPrefix(fields[0], "U"):
			u = User{Nkey: fields[0], Role: Role(fields[1])}
		case len(fields) == 3:
			u = User{Name: fields[0], Role: Role(fields[1]), PasswordHash: fields[2]}
		default:
			// Do not echo the line: it may hold a password by mistake.
			return nil, fmt.Errorf("NATS users file %s line %d: want \"<name> <role> <bcrypt hash>\" or \"<nkey> <role>\"", file, line)
		}
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("NATS users file %s line %d: %w", file, line, err)
		}
		if seen[u.id()] {
			return nil, fmt.Errorf("NATS users file %s line %d: user %q listed twice", file, line, u.id())
		}
		seen[u.id()] = true
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the NATS users file: %w", err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("NATS users file %s lists no user", file)
	}
	return users, nil
}

// applySecurity sets the TLS, route and user options of o for cfg and
// returns the in-process connection's password ("" without users).
func applySecurity(o *server.Options, cfg Config) (string, error) {
	sec := cfg.Security
	if !sec.enabled() {
		return "", nil
	}
	pool, err := tlsfiles.CAPool(sec.CAFile)
	if err != nil {
		return "", fmt.Errorf("broker: NATS %w", err)
	}
	kp, err := tlsfiles.KeyPair(sec.CertFile, sec.KeyFile)
	if err != nil {
		return "", fmt.Errorf("broker: NATS %w", err)
	}
	if err := tlsfiles.CheckIssuedFor(kp, sec.CertFile, pool, cfg.Host); err != nil {
		return "", fmt.Errorf("broker: NATS %w", err)
	}
	// Clients: TLS with this certificate; they authenticate by password.
	// nats-server uses both configs as they are (its own cipher list is
	// only for configuration files): Harden sets the suites.
	o.TLSConfig = tlsfiles.Harden(&tls.Config{Certificates: []tls.Certificate{kp}})
	o.TLSTimeout = 2
	o.TLSHandshakeFirst = sec.TLSFirst
	// Routes: TLS both ways, with the cluster CA only, and each side
	// must prove the route identity before anything else is sent: the
	// dialling side's CONNECT holds the route secret.
	o.Cluster.TLSConfig = tlsfiles.Harden(&tls.Config{
		Certificates:     []tls.Certificate{kp},
		RootCAs:          pool,
		ClientCAs:        pool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: tlsfiles.VerifyNodePeer,
	})
	o.Cluster.TLSTimeout = 2
	if sec.RoutePassword != "" {
		o.Cluster.Username, o.Cluster.Password = RouteUser, sec.RoutePassword
	}
	if len(sec.Users) == 0 {
		return "", nil
	}
	// A random password, stored as a bcrypt hash of the lowest cost: the
	// server warns about plain passwords, and the password's strength is
	// in its randomness.
	password := rand.Text()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	o.Users = []*server.User{{
		Username: inProcessUser, Password: string(hash),
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}}
	for _, u := range sec.Users {
		if u.Nkey != "" {
			o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: u.Nkey, Permissions: u.Role.permissions(u.Nkey)})
			continue
		}
		o.Users = append(o.Users, &server.User{Username: u.Name, Password: u.PasswordHash, Permissions: u.Role.permissions(u.Name)})
	}
	return password, nil
}

// redactor removes the route secret (and the in-process password) from
// what the server logs: it prints route URLs with their user info in a
// few places (reload.go: "Removed route %v").
func newRedactor(cfg Config, inProcPassword string) secret.Redactor {
	return secret.NewRedactor(cfg.Security.RoutePassword, inProcPassword)
}
