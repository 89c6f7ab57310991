package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshpool/meshpool/election"
	"github.com/meshpool/meshpool/internal/etcdclient"
	"github.com/meshpool/meshpool/internal/keyspace"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/registry"
)

// statusJSON is the --json output: one object.
type statusJSON struct {
	Master  *registry.Record  `json:"master"`
	Term    int64             `json:"term"`
	Members []registry.Record `json:"members"`
}

func (m *Main) runStatus(ctx context.Context, args []string) error {
	etcd := listFlag{"127.0.0.1:2379"}
	prefix := "/meshpool"
	asJSON, watch := false, false
	timeout, interval := 5*time.Second, time.Second
	var etcdSec etcdSecurityFlags
	fs := newFlagSet("status", "Reads the cluster's members, master and term from etcd.", m.Stdout)
	fs.Var(&etcd, "etcd", "etcd endpoints, comma-separated host:port (or https://host:port)")
	fs.StringVar(&prefix, "prefix", prefix, "etcd key prefix of the cluster")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object: {\"master\":{...},\"term\":N,\"members\":[...]}")
	fs.DurationVar(&timeout, "timeout", timeout, "give up when etcd does not answer within this time")
	fs.BoolVar(&watch, "watch", false, "refresh in place until interrupted")
	fs.DurationVar(&interval, "interval", interval, "with --watch: time between refreshes")
	etcdSec.bind(fs)
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	if err := keyspace.CheckPrefix(prefix); err != nil {
		return usagef("status: --prefix: %w", err)
	}
	if timeout <= 0 {
		return usagef("status: --timeout %s: want more than 0", timeout)
	}
	if interval <= 0 {
		return usagef("status: --interval %s: want more than 0", interval)
	}
	opts, err := etcdSec.options(etcd, timeout, m.Getenv)
	if err != nil {
		return usagef("status: %w", err)
	}
	// A first request says at once whether TLS or auth is wrong. An etcd
	// that does not answer is reported by the reads below, after --timeout
	// (and retried with --watch).
	cli, err := etcdclient.Connect(ctx, opts, keyspace.Nodes(prefix), nil)
	if err != nil && !(errors.Is(err, etcdclient.ErrUnreachable) && cli != nil) {
		if cli != nil {
			cli.Close()
		}
		return fmt.Errorf("status: %w", err)
	}
	defer cli.Close()
	if !watch {
		return m.showStatus(ctx, cli, etcd, prefix, asJSON, timeout)
	}
	for {
		if !asJSON {
			fmt.Fprint(m.Stdout, "\033[H\033[2J") // home, clear screen
			fmt.Fprintf(m.Stdout, "%s  (every %s, Ctrl-C to stop)\n\n", time.Now().Format("15:04:05"), interval)
		}
		if err := m.showStatus(ctx, cli, etcd, prefix, asJSON, timeout); err != nil {
			fmt.Fprintln(m.Stdout, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// showStatus reads and prints the cluster's status once.
func (m *Main) showStatus(ctx context.Context, cli *clientv3.Client, etcd listFlag, prefix string, asJSON bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mem, err := registry.List(ctx, cli, prefix)
	if err != nil {
		return fmt.Errorf("status: cannot read members from etcd at %s: %w", etcd.String(), err)
	}
	leader, err := election.CurrentLeader(ctx, cli, prefix)
	if err != nil {
		return fmt.Errorf("status: cannot read the master from etcd at %s: %w", etcd.String(), err)
	}
	out := statusJSON{Term: leader.Term, Members: mem.Members}
	if out.Members == nil {
		out.Members = []registry.Record{}
	}
	if r, ok := mem.Lookup(leader.ID); ok {
		out.Master = &r
	} else if leader.ID != "" {
		out.Master = &registry.Record{ID: leader.ID}
	}
	if asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if out.Master != nil {
		fmt.Fprintf(m.Stdout, "master: %s (term %d)\n\n", out.Master.ID, out.Term)
	} else {
		fmt.Fprintf(m.Stdout, "master: none\n\n")
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tIP\tCLIENT\tCLUSTER\tHTTP\tAGE\tROLE\tSLOTS\tKINDS")
	for _, r := range out.Members {
		role := "worker"
		if r.ID == leader.ID {
			role = "master"
		}
		slots, kinds := "-", message.KindTriple // a node from before kinds and slots
		if r.Slots > 0 {
			slots = strconv.Itoa(r.Slots)
		}
		if r.Kinds != nil {
			kinds = strings.Join(r.Kinds, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.IP, r.ClientURL, r.ClusterURL, r.HTTPURL,
			time.Since(r.Started).Round(time.Second), role, slots, kinds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "\n%d members\n", len(out.Members))
	return nil
}
