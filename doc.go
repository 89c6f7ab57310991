// Package meshpool is what a worker runs: a Task, the Handler that works it,
// and a Mux that holds one handler per task kind. A node (package node) is
// given a Mux and registers its kinds, so the master sends it only tasks it
// can run:
//
//	mux := meshpool.NewMux()
//	mux.Handle("sha256", meshpool.Typed(func(ctx context.Context, t *meshpool.Task, in Input) (Output, error) {
//		…
//	}))
//	n, err := node.New(node.Config{Etcd: endpoints, Advertise: ip, Handlers: mux})
//
// Any other language plugs in as a command (package command, or
// `meshpool node --exec KIND=COMMAND`).
package meshpool
