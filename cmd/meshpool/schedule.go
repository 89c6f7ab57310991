package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/schedule"
)

const scheduleUsage = `Usage:
  meshpool schedule add NAME --cron EXPR --kind K [--payload JSON | --payload-file F] [flags]
  meshpool schedule remove NAME [flags]
  meshpool schedule list [--json] [flags]

Schedules of recurring tasks, kept by the master. Run 'meshpool schedule <command> --help' for its flags.
`

func (m *Main) runSchedule(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("schedule: want add, remove or list (see 'meshpool schedule --help')")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "add":
		return m.runScheduleAdd(ctx, rest)
	case "remove":
		return m.runScheduleRemove(ctx, rest)
	case "list":
		return m.runScheduleList(ctx, rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, scheduleUsage)
		return nil
	default:
		return usagef("schedule: unknown command %q: want add, remove or list (see 'meshpool schedule --help')", cmd)
	}
}

func (m *Main) runScheduleAdd(ctx context.Context, args []string) error {
	var sf serverFlags
	var s schedule.Schedule
	var payload, payloadFile string
	var opts taskOptionFlags
	asJSON := false
	fs := newFlagSet("schedule add", "meshpool schedule add NAME --cron EXPR --kind K [flags]\n\nAdds a schedule: at each tick of --cron the master submits a task of --kind.", m.Stdout)
	sf.bind(fs)
	fs.StringVar(&s.Cron, "cron", "", "when the task runs: a cron expression (5 fields) or a descriptor such as @hourly, in UTC unless it starts with CRON_TZ=Zone")
	fs.StringVar(&s.Kind, "kind", "", "the task's kind")
	fs.StringVar(&payload, "payload", "", "the task's input, a JSON value (default null)")
	fs.StringVar(&payloadFile, "payload-file", "", "read the payload from this file (- for stdin)")
	fs.StringVar(&s.Durability, "durability", message.DurabilityDurable, "each task's durability: durable or none")
	fs.BoolVar(&asJSON, "json", false, "print the answer as one JSON object")
	opts.bind(fs, false)
	given, err := parseArgs(fs, args, m.Getenv, "NAME")
	if err != nil {
		return helpIsNoError(err)
	}
	if len(given) == 0 {
		return usagef("schedule add: want the schedule's NAME (see 'meshpool schedule add --help')")
	}
	s.Name = given[0]
	switch {
	case s.Cron == "":
		return usagef("schedule add: --cron is required")
	case s.Kind == "":
		return usagef("schedule add: --kind is required")
	}
	if s.Options, err = opts.options(fs); err != nil {
		return usagef("schedule add: %w", err)
	}
	text, err := m.payloadOf(payload, payloadFile)
	if err != nil {
		return usagef("schedule add: %w", err)
	}
	if s.Payload, err = jsonPayload(text); err != nil {
		return usagef("schedule add: %w", err)
	}
	// The rest of the rules are the master's: read it as the master will.
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("schedule add: %w", err)
	}
	if _, err := schedule.DecodeAdd(body, time.Now()); err != nil {
		return usagef("schedule add: %w", err)
	}
	c, err := sf.dial("schedule add")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	reply, err := c.AddSchedule(ctx, s)
	if err != nil {
		return fmt.Errorf("schedule add: %w", err)
	}
	text = fmt.Sprintf("added schedule %s (%s, kind %s)", s.Name, s.Cron, s.Kind)
	if len(reply.Schedules) == 1 && !reply.Schedules[0].Next.IsZero() {
		text += ", next " + reply.Schedules[0].Next.Format(time.RFC3339)
	}
	return m.print(asJSON, reply, text)
}

func (m *Main) runScheduleRemove(ctx context.Context, args []string) error {
	var sf serverFlags
	asJSON := false
	fs := newFlagSet("schedule remove", "meshpool schedule remove NAME [flags]\n\nRemoves a schedule: no more tasks are submitted for it.", m.Stdout)
	sf.bind(fs)
	fs.BoolVar(&asJSON, "json", false, "print the answer as one JSON object")
	given, err := parseArgs(fs, args, m.Getenv, "NAME")
	if err != nil {
		return helpIsNoError(err)
	}
	if len(given) == 0 {
		return usagef("schedule remove: want the schedule's NAME (see 'meshpool schedule remove --help')")
	}
	if err := schedule.ValidName(given[0]); err != nil {
		return usagef("schedule remove: %w", err)
	}
	c, err := sf.dial("schedule remove")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	reply, err := c.RemoveSchedule(ctx, given[0])
	if err != nil {
		return fmt.Errorf("schedule remove: %w", err)
	}
	return m.print(asJSON, reply, "removed schedule "+given[0])
}

func (m *Main) runScheduleList(ctx context.Context, args []string) error {
	var sf serverFlags
	asJSON := false
	fs := newFlagSet("schedule list", "Lists the schedules, each with when it fires next.", m.Stdout)
	sf.bind(fs)
	fs.BoolVar(&asJSON, "json", false, "print the schedules as one JSON array")
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	c, err := sf.dial("schedule list")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	entries, err := c.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("schedule list: %w", err)
	}
	if entries == nil {
		entries = []schedule.Entry{}
	}
	if asJSON {
		return m.print(true, entries, "")
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tKIND\tNEXT\tLAST")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Cron, e.Kind, timeOrDash(e.Next), timeOrDash(e.Last))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%d schedules\n", len(entries))
	return nil
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
