// Command etcd is etcd's own server, built from the etcd module meshpool
// pins (go.mod: go.etcd.io/etcd/server/v3), so that the tests, the
// benchmark and the Vagrant set-up run the etcd version the client speaks,
// with no download and no distribution package: etcd 3.4 and 3.5 skip
// permission checks while the NOSPACE alarm is raised (fixed in 3.6), which
// would let any user with the nodes' credentials act as etcd's root.
//
//	go build -o bin/etcd ./internal/cmd/etcd   # make build does it
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
