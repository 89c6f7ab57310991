package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

// taskOptionFlags are a task's options (message.Options) as submit and
// schedule add take them.
type taskOptionFlags struct {
	timeout, delay, backoff, backoffMax time.Duration
	runAt                               string
	maxAttempts, priority               int
}

// bind adds the flags; when is false for a schedule, whose tasks run at
// their tick: no --delay nor --run-at.
func (f *taskOptionFlags) bind(fs *flag.FlagSet, when bool) {
	fs.DurationVar(&f.timeout, "task-timeout", 0, "bound one attempt of the task: its handler is stopped then (default: the node's --task-timeout)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 0, fmt.Sprintf("attempts the task gets in all, 1-%d (default: the node's --max-attempts)", message.MaxAttempts))
	fs.IntVar(&f.priority, "priority", 0, fmt.Sprintf("0 (the default, lowest) to %d: within a kind, higher goes first", message.MaxPriority))
	fs.DurationVar(&f.backoff, "backoff", 0, "wait before attempt n+1 is about backoff × 2^(n-1), with jitter (default: the node's --backoff)")
	fs.DurationVar(&f.backoffMax, "backoff-max", 0, "the wait before another attempt at most (default: the node's --backoff-max)")
	if when {
		fs.DurationVar(&f.delay, "delay", 0, "do not start the task before this long from now (not with --run-at)")
		fs.StringVar(&f.runAt, "run-at", "", "do not start the task before this time, RFC 3339 such as 2030-01-02T15:04:05Z (not with --delay)")
	}
}

// options checks each flag given and returns the options; a bad value is
// an error naming its flag.
func (f *taskOptionFlags) options(fs *flag.FlagSet) (message.Options, error) {
	o := message.Options{Timeout: message.Duration(f.timeout), MaxAttempts: f.maxAttempts, Delay: message.Duration(f.delay),
		Priority: f.priority, Backoff: message.Duration(f.backoff), BackoffMax: message.Duration(f.backoffMax)}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if err != nil {
			return
		}
		switch fl.Name {
		case "task-timeout":
			err = between("--task-timeout", f.timeout, message.MaxTimeout)
		case "delay":
			err = between("--delay", f.delay, message.MaxDelay)
		case "backoff":
			err = between("--backoff", f.backoff, message.MaxBackoff)
		case "backoff-max":
			err = between("--backoff-max", f.backoffMax, message.MaxBackoff)
		case "max-attempts":
			if f.maxAttempts < 1 || f.maxAttempts > message.MaxAttempts {
				err = fmt.Errorf("--max-attempts %d: want 1 to %d", f.maxAttempts, message.MaxAttempts)
			}
		case "priority":
			if f.priority < 0 || f.priority > message.MaxPriority {
				err = fmt.Errorf("--priority %d: want 0 to %d", f.priority, message.MaxPriority)
			}
		case "run-at":
			t, perr := time.Parse(time.RFC3339, f.runAt)
			switch {
			case perr != nil:
				err = fmt.Errorf("--run-at %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", f.runAt)
			case t.Year() < 2000 || t.Year() > 9999:
				err = fmt.Errorf("--run-at %q: not a time a task can be run at", f.runAt)
			default:
				o.RunAt = message.NewTimestamp(t)
			}
		}
	})
	switch {
	case err != nil:
		return o, err
	case f.runAt != "" && f.delay != 0:
		return o, fmt.Errorf("give --delay or --run-at, not both")
	}
	if err := o.Validate(); err != nil { // the rest of the rules are the master's
		return o, err
	}
	return o, nil
}

// between checks a duration flag given: more than 0, at most limit.
func between(name string, d, limit time.Duration) error {
	if d <= 0 || d > limit {
		return fmt.Errorf("%s %s: want more than 0 and at most %s", name, d, limit)
	}
	return nil
}

// serverFlags are how the commands that ask the master reach the
// cluster: --server, the NATS credentials, and how long to keep asking.
type serverFlags struct {
	server  string
	timeout time.Duration
	sec     natsClientFlags
}

func (f *serverFlags) bind(fs *flag.FlagSet) {
	f.server, f.timeout = "nats://127.0.0.1:4222", 10*time.Second
	fs.StringVar(&f.server, "server", f.server, "NATS URL of any node")
	fs.DurationVar(&f.timeout, "timeout", f.timeout, "give up when no master has answered within this time (more than 0)")
	f.sec.bind(fs)
}

// dial checks the flags (a mistake is a usage error of command name) and
// connects.
func (f *serverFlags) dial(name string) (*client.Client, error) {
	if err := checkServer(f.server); err != nil {
		return nil, usagef("%s: %w", name, err)
	}
	if f.timeout <= 0 {
		return nil, usagef("%s: --timeout %s: want more than 0", name, f.timeout)
	}
	opts, err := f.sec.options()
	if err != nil {
		return nil, usagef("%s: %w", name, err)
	}
	c, err := client.Dial(f.server, append(opts, nats.Name("meshpool "+name))...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
