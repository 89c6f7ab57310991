// Command meshpool runs a node of a self-organising worker pool, a local dev
// cluster, or reads a cluster's status. See `meshpool --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "meshpool: %s, shutting down (again to exit at once)\n", sig)
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "meshpool: second signal, exiting now")
		os.Exit(130)
	}()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(exitCode(m.Run(ctx, os.Args[1:]), os.Stderr))
}

// Main holds what a run of the command talks to, so tests can run it in
// process.
type Main struct {
	Stdin          io.Reader // nil reads as empty
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// usageError is a mistake in the command line or environment: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	// One line, whatever the error: a config that is wrong in several
	// ways lists them all, separated by "; ".
	fmt.Fprintln(stderr, "meshpool:", strings.ReplaceAll(err.Error(), "\n", "; "))
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

const mainUsage = `meshpool: a self-organising worker pool on etcd and NATS.

Usage:
  meshpool node    [flags]   run a node (one per machine)
  meshpool dev     [flags]   run a local cluster: embedded etcd and N nodes on 127.0.0.x
  meshpool status  [flags]   show the members, the master and its term
  meshpool submit  [flags]   submit a task (or --count N of them) and optionally wait for results
  meshpool get UUID [flags]  show a task: its state, attempts, errors and result
  meshpool tasks   [flags]   list tasks, newest first (--state, --kind, --limit)
  meshpool cancel UUID [flags]  cancel a task pending, retrying or running
  meshpool retry UUID | --state failed|cancelled [flags]  run failed or cancelled tasks again
  meshpool schedule add|remove|list [flags]  recurring tasks on a cron schedule
  meshpool watch   [flags]   follow results and cluster events as readable lines
  meshpool secure-setup [flags]  write a CA, certificates, a route secret and users for a secure cluster
  meshpool version           print the version

Every flag can also be set in the environment as MESHPOOL_<FLAG>, e.g.
MESHPOOL_ETCD=10.0.0.1:2379. Run 'meshpool <command> --help' for its flags.
`

// Run runs one command line (without the program name).
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, mainUsage)
		return usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "node":
		return m.runNode(ctx, rest)
	case "dev":
		return m.runDev(ctx, rest)
	case "status":
		return m.runStatus(ctx, rest)
	case "submit":
		return m.runSubmit(ctx, rest)
	case "get":
		return m.runGet(ctx, rest)
	case "tasks":
		return m.runTasks(ctx, rest)
	case "cancel":
		return m.runCancel(ctx, rest)
	case "retry":
		return m.runRetry(ctx, rest)
	case "schedule":
		return m.runSchedule(ctx, rest)
	case "watch":
		return m.runWatch(ctx, rest)
	case "secure-setup":
		return m.runSecureSetup(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintln(m.Stdout, "meshpool", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, mainUsage)
		return nil
	default:
		fmt.Fprint(m.Stderr, mainUsage)
		return usagef("unknown command %q", cmd)
	}
}
