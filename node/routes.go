package node

import (
	"context"
	"time"

	"github.com/meshpool/meshpool/broker"
	"github.com/meshpool/meshpool/registry"
)

// joinGrace is how long a node waits before it dials a member whose cluster
// URL sorts before its own; that member dials it at once. If both sides of a
// pair dial at the same moment, nats-server may register each route on the
// opposite connection and close both, and an explicit route is redialled
// only after a second (route.go, reConnectToRoute): about one join in ten
// took 1.1 s instead of 50 ms. Dialled after the grace, the route usually
// exists already, and the server only marks it as one to keep
// (handleDuplicateRoute); if it does not (the other side cannot reach us),
// our dial makes it.
const joinGrace = 500 * time.Millisecond

// syncRoutes keeps the NATS routes equal to the other members' cluster URLs.
// Of each pair, the node with the lower URL dials at once, the other after
// joinGrace from when it first saw the member.
func (n *Node) syncRoutes(ctx context.Context, reg *registry.Registry, br *broker.Broker) {
	log := n.logger("cluster")
	own := br.ClusterURL()         // what the others see in our record
	seen := map[string]time.Time{} // when each member was first seen
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	defer grace.Stop()
	lastErr := "" // of the last SetPeers
	for {
		mem, changed := reg.Membership()
		now := time.Now()
		var urls []string
		wait := time.Duration(0)
		for _, r := range mem.Others(n.id) {
			at, ok := seen[r.ID]
			if !ok {
				at, seen[r.ID] = now, now
			}
			if r.ClusterURL < own {
				if left := at.Add(joinGrace).Sub(now); left > 0 {
					if wait == 0 || left < wait {
						wait = left
					}
					continue
				}
			}
			urls = append(urls, r.ClusterURL)
		}
		for id := range seen {
			if _, ok := mem.Lookup(id); !ok {
				delete(seen, id)
			}
		}
		// An invalid URL is skipped, the rest applied; say so once per
		// change of what was skipped, not at every membership change.
		err := br.SetPeers(urls)
		if msg := errText(err); msg != lastErr {
			lastErr = msg
			if err != nil {
				log.Error("cannot update routes", "err", err)
			}
		}
		if wait > 0 {
			grace.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-grace.C:
		}
	}
}

// errText is err's text, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
