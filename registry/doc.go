// Package registry keeps this node's record in etcd and tells every node who
// else is there.
//
// A Registry writes <prefix>/nodes/<id> as JSON under a lease that it keeps
// alive, registers again whenever the lease or the key is lost, and revokes
// the lease on a clean stop so that the others see the node leave at once.
// It also mirrors <prefix>/nodes/ (one Get, then a Watch from the next
// revision) and publishes ordered, de-duplicated Membership snapshots.
package registry
