// Command goworker is a meshpool node with a handler of its own: it joins a
// cluster of stock `meshpool node`s and runs tasks of kind "wordcount".
//
//	go run ./examples/goworker --etcd 127.0.0.1:2379 --advertise 127.0.0.5
//	meshpool submit --server nats://127.0.0.2:4222 --kind wordcount --payload '{"text":"to be or not to be"}' --wait
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/node"
)

// Text is a wordcount task's payload; Counts its result.
type Text struct {
	Text string `json:"text"`
}

type Counts struct {
	Words    int            `json:"words"`
	Distinct map[string]int `json:"distinct"`
}

func wordcount(ctx context.Context, t *meshpool.Task, in Text) (Counts, error) {
	c := Counts{Distinct: map[string]int{}}
	for _, w := range strings.Fields(strings.ToLower(in.Text)) {
		c.Words++
		c.Distinct[w]++
	}
	return c, nil
}

func main() {
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd endpoint")
	ip := flag.String("advertise", "127.0.0.5", "IP this node listens on")
	flag.Parse()

	mux := meshpool.NewMux()
	mux.Handle("wordcount", meshpool.Typed(wordcount))
	n, err := node.New(node.Config{Etcd: []string{*etcd}, Advertise: *ip, Handlers: mux,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		slog.Error("cannot start", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := n.Run(ctx); err != nil {
		slog.Error("node failed", "err", err)
		os.Exit(1)
	}
}
