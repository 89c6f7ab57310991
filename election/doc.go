// Package election elects one leader among the meshpool nodes through etcd
// (package node calls the leader the master).
//
// Every node campaigns with its node ID under <prefix>/election, using the
// etcd client's concurrency session and election. The winner's lead callback
// runs under a leadership context that ends as soon as the leadership does:
// when the session's lease is lost, when the leader key disappears, or when
// the node stops. The term handed to the callback is the create revision of
// the leader key; it only grows, so it serves as a fencing token.
//
// Every node, leader or not, also follows who the leader is (the oldest key
// under the election prefix, the rule concurrency uses) through Leader, and
// `meshpool status` reads it once with CurrentLeader. Phantom says when that
// leader's key cannot be a candidate's; a leader key without a lease (put by
// hand) is deleted, since it would block every candidate for ever. An etcd
// replaced under the same endpoints (revision backwards, cluster ID changed)
// is noticed: the view is read again and the node campaigns once more.
package election
