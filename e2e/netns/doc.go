// Package netns builds small virtual networks out of Linux network
// namespaces for multi-host tests: one Net is a bridge with one namespace per
// Host, each reaching the bridge through a veth whose inside end is called
// eth1, like the article's Vagrant machines.
//
// Everything lives in namespaces that the test creates. The bridge sits in a
// namespace of its own, so the host's interfaces, routes and firewall are
// never touched and the private 10.99.<k>.0/24 range is never routed
// anywhere. A Host can cut itself off (Partition) and come back (Heal); the
// test process can run programs in a host (Command, Start) and open sockets
// there itself (DialContext, Listen).
//
// It needs root and iproute2's ip. Tests call Require, or New which calls
// it: without MESHPOOL_E2E=1 they are skipped; with it, a machine that
// cannot run them fails them with the reason. Only tests use this package.
package netns
