package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// The commands on tasks the master answers: get, tasks, cancel, retry.

func (m *Main) runGet(ctx context.Context, args []string) error {
	return m.oneTask(ctx, args, "get", "Shows one task: its state, attempts and their errors, its result and its times.",
		(*client.Client).Get, func(ti message.TaskInfo) { showTask(m.Stdout, ti) })
}

// oneTask runs a command on one task named by its UUID (get, cancel):
// it asks the master with op, then prints the task as JSON or with show.
func (m *Main) oneTask(ctx context.Context, args []string, name, synopsis string,
	op func(*client.Client, context.Context, string) (message.TaskInfo, error), show func(message.TaskInfo)) error {
	var sf serverFlags
	asJSON := false
	fs := newFlagSet(name, "meshpool "+name+" UUID [flags]\n\n"+synopsis, m.Stdout)
	sf.bind(fs)
	fs.BoolVar(&asJSON, "json", false, "print the task as one JSON object (message.TaskInfo)")
	given, err := parseArgs(fs, args, m.Getenv, "UUID")
	if err != nil {
		return helpIsNoError(err)
	}
	if len(given) == 0 {
		return usagef("%s: want the task's UUID (see 'meshpool %s --help')", name, name)
	}
	c, err := sf.dial(name)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	ti, err := op(c, ctx, given[0])
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if asJSON {
		return m.print(true, ti, "")
	}
	show(ti)
	return nil
}

// showTask prints a task as get shows it, one field a line.
func showTask(w io.Writer, ti message.TaskInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, value)
		}
	}
	line("uuid", ti.UUID)
	line("state", ti.State)
	line("kind", ti.Kind)
	line("attempts", attempts(ti))
	line("priority", strconv.Itoa(ti.Priority))
	line("durability", ti.Durability)
	if ti.Timeout != 0 {
		line("timeout", ti.Timeout.D().String())
	}
	line("executor", ti.Executor)
	line("submitted", stamp(ti.Submitted))
	line("started", stamp(ti.Started))
	line("finished", stamp(ti.Finished))
	line("next attempt", stamp(ti.NextAt))
	if len(ti.Payload) > 0 {
		line("payload", cut(string(ti.Payload), 200))
	}
	switch r := ti.Result; {
	case r == nil:
	case r.Error != "":
		line("result", "error: "+r.Error)
	default:
		line("result", string(r.Result))
	}
	_ = tw.Flush()
	if len(ti.Errors) > 0 {
		fmt.Fprintln(w, "errors:")
		for _, e := range ti.Errors {
			fmt.Fprintf(w, "  attempt %d on %s at %s: %s\n", e.Attempt, orDash(e.Executor), e.At.Format(time.RFC3339), e.Error)
		}
	}
}

func (m *Main) runTasks(ctx context.Context, args []string) error {
	var sf serverFlags
	var req message.ListRequest
	asJSON := false
	fs := newFlagSet("tasks", "Lists tasks, newest first: the live ones and the final ones still kept.", m.Stdout)
	sf.bind(fs)
	fs.StringVar(&req.State, "state", "", "only tasks in this state: "+strings.Join(message.States, ", "))
	fs.StringVar(&req.Kind, "kind", "", "only tasks of this kind")
	fs.IntVar(&req.Limit, "limit", message.DefaultListLimit, fmt.Sprintf("list at most this many, 1-%d", message.MaxListLimit))
	fs.BoolVar(&asJSON, "json", false, "print the listing as one JSON object (message.ListReply)")
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	if err := checkSelection("tasks", req.State, req.Kind, req.Limit); err != nil {
		return err
	}
	c, err := sf.dial("tasks")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	reply, err := c.List(ctx, req)
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	if asJSON {
		return m.print(true, reply, "")
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tKIND\tSTATE\tATTEMPTS\tPRIORITY\tSUBMITTED\tLAST ERROR")
	for _, ti := range reply.Tasks {
		last := "-"
		if n := len(ti.Errors); n > 0 {
			last = cut(ti.Errors[n-1].Error, 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ti.UUID, orDash(ti.Kind), ti.State, attempts(ti), ti.Priority, orDash(stamp(ti.Submitted)), last)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if reply.More {
		fmt.Fprintf(m.Stdout, "%d tasks (more: raise --limit)\n", len(reply.Tasks))
	} else {
		fmt.Fprintf(m.Stdout, "%d tasks\n", len(reply.Tasks))
	}
	return nil
}

// checkSelection checks --state, --kind and --limit as the master will.
func checkSelection(name, state, kind string, limit int) error {
	if state != "" {
		if err := message.ValidState(state); err != nil {
			return usagef("%s: --state: %w", name, err)
		}
	}
	if kind != "" {
		if err := message.ValidKind(kind); err != nil {
			return usagef("%s: --kind: %w", name, err)
		}
	}
	if limit < 1 || limit > message.MaxListLimit {
		return usagef("%s: --limit %d: want 1 to %d", name, limit, message.MaxListLimit)
	}
	return nil
}

func (m *Main) runCancel(ctx context.Context, args []string) error {
	return m.oneTask(ctx, args, "cancel", "Cancels a task pending, retrying or running (its worker is told to stop it): it never runs again.",
		(*client.Client).Cancel, func(ti message.TaskInfo) {
			fmt.Fprintf(m.Stdout, "cancelled %s (%s, %s attempts)\n", ti.UUID, orDash(ti.Kind), attempts(ti))
		})
}

func (m *Main) runRetry(ctx context.Context, args []string) error {
	var sf serverFlags
	var req message.RetryRequest
	asJSON := false
	fs := newFlagSet("retry", "meshpool retry UUID [flags]\nmeshpool retry --state failed|cancelled [--kind K] [--limit N] [flags]\n\nRuns failed or cancelled tasks again with fresh attempts: one, or those in a state.", m.Stdout)
	sf.bind(fs)
	fs.StringVar(&req.State, "state", "", "retry the tasks in this state: failed or cancelled (instead of a UUID)")
	fs.StringVar(&req.Kind, "kind", "", "with --state: only tasks of this kind")
	fs.IntVar(&req.Limit, "limit", message.DefaultListLimit, fmt.Sprintf("with --state: retry at most this many, 1-%d", message.MaxListLimit))
	fs.BoolVar(&asJSON, "json", false, "print the answer as one JSON object (message.RetryReply)")
	given, err := parseArgs(fs, args, m.Getenv, "UUID")
	if err != nil {
		return helpIsNoError(err)
	}
	switch {
	case len(given) == 1 && (req.State != "" || req.Kind != ""):
		return usagef("retry: give a UUID, or --state (and --kind), not both")
	case len(given) == 1:
		req.UUID, req.Limit = given[0], 0
	case req.State != message.StateFailed && req.State != message.StateCancelled:
		return usagef("retry: want a UUID, or --state failed or --state cancelled (see 'meshpool retry --help')")
	default:
		if err := checkSelection("retry", req.State, req.Kind, req.Limit); err != nil {
			return err
		}
	}
	c, err := sf.dial("retry")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	reply, err := c.Retry(ctx, req)
	switch {
	case len(reply.Retried) == 0 && err != nil:
	case asJSON: // also when an error stopped the rest: what was retried
		if err := m.print(true, reply, ""); err != nil {
			return err
		}
	default:
		fmt.Fprintf(m.Stdout, "retried %d tasks\n", len(reply.Retried))
		for _, id := range reply.Retried {
			fmt.Fprintln(m.Stdout, id)
		}
	}
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	return nil
}

// attempts is "n/max", or n when the maximum is not known.
func attempts(ti message.TaskInfo) string {
	if ti.MaxAttempts == 0 {
		return strconv.Itoa(ti.Attempts)
	}
	return fmt.Sprintf("%d/%d", ti.Attempts, ti.MaxAttempts)
}

// stamp is a time as RFC 3339, "" for none.
func stamp(t *message.Timestamp) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cut shortens s to n characters at most, on one line.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
