// Package broker owns the embedded nats-server of one meshpool node.
//
// A Broker listens for NATS clients and for routes from other nodes on one
// IP address, which it also advertises, under a fixed cluster name. The set
// of peers it routes to changes at run time through SetPeers, which reloads
// only the server's Routes option: the server is never restarted, so the
// node's own in-process client connection (Conn) is never interrupted.
//
// Config.Security locks the server down: TLS on the client and route ports
// with the cluster CA (routes verify both ways), a route secret, and client
// users whose roles (node, submitter, observer) set their permissions. What
// the server logs passes through a redactor, as it prints route URLs with
// their credentials in a few places.
//
// Typical use:
//
//	b, err := broker.Start(cfg)
//	if err != nil { ... }
//	defer b.Close()
//	err = b.SetPeers(clusterURLsOfTheOtherNodes)
package broker
