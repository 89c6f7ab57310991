package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidPeer is wrapped by SetPeers' error for a malformed cluster URL.
var ErrInvalidPeer = errors.New("broker: invalid peer URL")

// SetPeers sets the full desired set of other nodes' cluster URLs
// ("nats-route://IP:port", as returned by their ClusterURL; nats://IP:port
// is taken too). Order and
// duplicates do not matter and the broker's own URL is ignored. If the set
// is unchanged SetPeers does nothing; otherwise it reloads the server with
// only its Routes option changed: new peers are dialled, and every route
// connection with a removed peer (dialled by either side, or learned by
// gossip) is closed and not reconnected. The server is never restarted and
// the in-process client is not interrupted.
//
// Routes are not an allow-list: a removed peer that is still running and
// still lists this node (or any node of the cluster) can route to it again,
// by dialling or by gossip. Once it is dead nothing dials it again, apart
// from at most one immediate attempt per gossip-learned connection.
//
// An invalid URL is skipped and the others are applied: SetPeers then
// returns an error (errors.Is ErrInvalidPeer) naming each skipped URL (at
// most 200 bytes of it), so that one bad peer never blocks the rest.
func (b *Broker) SetPeers(clusterURLs []string) error {
	want, invalid := b.canonicalPeers(clusterURLs)
	if err := b.setPeers(want); err != nil {
		return err
	}
	return invalid
}

// setPeers reloads the routes to want, canonical peers as canonicalPeers
// returns them.
func (b *Broker) setPeers(want []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if slices.Equal(want, b.peers) {
		// ReloadOptions with identical options would still count as a
		// reload (new ConfigTime, log lines), so skip it.
		return nil
	}

	opts := b.template.Clone()
	opts.Routes = make([]*url.URL, len(want))
	for i, hostPort := range want {
		u, err := routeURL(hostPort)
		if err != nil { // canonicalPeers has parsed it already
			return fmt.Errorf("%w %s: %w", ErrInvalidPeer, quote(hostPort), err)
		}
		u.User = b.routeUser
		opts.Routes[i] = u
	}
	if err := b.srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("broker: cannot reload routes: %w", err)
	}
	added, removed := diffSorted(b.peers, want)
	b.peers = want
	b.log.Info("routes updated", slog.Any("peers", want), slog.Any("added", added), slog.Any("removed", removed))
	return nil
}

// Routes returns the sorted server names of the peers this server has at
// least one live route connection with. A peer counts once, however many
// pooled connections it has. It is the server's view: a peer that has just
// stopped is listed until the server has read the close of its connections,
// including one whose handshake the server only gets to after the stop.
func (b *Broker) Routes() []string {
	rz, err := b.srv.Routez(nil)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(rz.Routes))
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			names = append(names, r.RemoteName)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

const routeScheme = "nats-route"

// routeURL returns the route URL for hostPort in exactly the form
// nats-server builds for the routes it learns: from a peer's INFO on an
// accepted connection (route.go:847-857) and from gossip
// (route.go:2870, processImplicitRoute), i.e. with a trailing slash.
// The server matches routes with reflect.DeepEqual (urlsAreEqual), and
// on reload closes only the connections whose URL equals a removed one
// (reload.go routesOption.Apply); the same form makes that removal reach
// accepted and gossip-learned connections to the peer as well as the ones
// dialled from the Routes option.
//
// With a route secret, SetPeers adds it as user info (nats-server sends a
// route URL's user and password in its CONNECT, route.go sendRouteConnect),
// which is again the form of gossip-learned routes (route.go:1093). Accepted
// connections keep a URL without it, so removing a peer that is still
// running closes only the connections this node dialled or learned by
// gossip; the peer's own connection stays until the peer closes it (it
// stops, or removes this node in turn). Routes are not an allow-list either
// way: the route secret and the cluster CA are what keep strangers out.
func routeURL(hostPort string) (*url.URL, error) {
	return url.Parse(routeScheme + "://" + hostPort + "/")
}

// canonicalPeers parses raw into sorted, distinct "host:port" strings,
// without the broker's own address. It leaves out the URLs that do not
// parse and returns them as one error, or nil.
func (b *Broker) canonicalPeers(raw []string) ([]string, error) {
	peers := make([]string, 0, len(raw))
	var invalid []error
	for _, s := range raw {
		hostPort, err := routeHostPort(s)
		if err == nil {
			if _, perr := routeURL(hostPort); perr != nil {
				err = fmt.Errorf("%w %s: its host does not parse back into a URL", ErrInvalidPeer, quote(s))
			}
		}
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		if hostPort != b.clusterHostPort {
			peers = append(peers, hostPort)
		}
	}
	slices.Sort(peers)
	return slices.Compact(peers), errors.Join(invalid...)
}

// routeHostPort returns "host:port" of "nats-route://host:port[/]" (or
// "nats://host:port[/]"). Its error quotes at most 200 bytes of s.
func routeHostPort(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats all of s; its Err is the reason alone.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return "", fmt.Errorf("%w %s: %w", ErrInvalidPeer, quote(s), err)
	}
	if u.Scheme != routeScheme && u.Scheme != "nats" {
		return "", fmt.Errorf("%w %s: scheme must be %s", ErrInvalidPeer, quote(s), routeScheme)
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w %s: want %s://host:port only", ErrInvalidPeer, quote(s), routeScheme)
	}
	host, port := u.Hostname(), u.Port()
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%w %s: want %s://host:port with a port in 1..65535", ErrInvalidPeer, quote(s), routeScheme)
	}
	return net.JoinHostPort(canonicalHost(host), port), nil
}

// quote returns s quoted, cut to its first 200 bytes plus its size when
// longer.
func quote(s string) string {
	const max = 200
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:max]), len(s))
}

// canonicalHost returns the canonical text form of an IP address (so that
// it matches the address a peer advertises), or a lower-cased host name.
func canonicalHost(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return strings.ToLower(host)
}

// diffSorted returns what is in want but not in have, and the reverse.
func diffSorted(have, want []string) (added, removed []string) {
	for _, w := range want {
		if _, found := slices.BinarySearch(have, w); !found {
			added = append(added, w)
		}
	}
	for _, h := range have {
		if _, found := slices.BinarySearch(want, h); !found {
			removed = append(removed, h)
		}
	}
	return added, removed
}
