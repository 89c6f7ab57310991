package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/meshpool/meshpool/client"
	"github.com/meshpool/meshpool/message"
)

func (m *Main) runSubmit(ctx context.Context, args []string) error {
	// A user without the submitter role is refused by the server, not by
	// the master: stop at once and say so, instead of waiting for a master.
	ctx, notPermitted := context.WithCancelCause(ctx)
	defer notPermitted(nil)
	err := m.submit(ctx, args, notPermitted)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, nats.ErrPermissionViolation) {
		return fmt.Errorf("submit: not permitted: %w", cause)
	}
	return err
}

func (m *Main) submit(ctx context.Context, args []string, notPermitted context.CancelCauseFunc) error {
	server := "nats://127.0.0.1:4222"
	var sub message.Submit
	wait := false
	timeout := 30 * time.Second
	count, concurrency, batch := 0, 16, 1
	asJSON := false
	fs := newFlagSet("submit", "Submits a task to any node, on tasks.submit.<user> as --nats-user or --nats-nkey, else on tasks.submit; the master answers once the task is recorded.\nWith --count, submits many and reports how many were accepted and got results.", m.Stdout)
	fs.StringVar(&server, "server", server, "NATS URL of any node")
	var payload, payloadFile string
	fs.StringVar(&sub.Kind, "kind", "", "the task's kind: the handler that runs it (default the demo kind, "+message.KindTriple+", with --number)")
	fs.StringVar(&payload, "payload", "", "the task's input, a JSON value (default null)")
	fs.StringVar(&payloadFile, "payload-file", "", "read the payload from this file (- for stdin)")
	fs.Int64Var(&sub.Number, "number", 0, "the demo task's number (the demo job answers number*3); not with --kind")
	fs.StringVar(&sub.UUID, "uuid", "", "idempotency key: a task submitted again with the same uuid is not run twice (default: a new uuid)")
	fs.StringVar(&sub.Durability, "durability", message.DurabilityDurable, "durable: recorded in etcd before it is accepted; none: kept only in the master's memory, faster, lost if the master fails")
	fs.BoolVar(&wait, "wait", false, "wait for the result and print it")
	fs.DurationVar(&timeout, "timeout", timeout, "give up after this long (more than 0); after temporary refusals the last one's reason is reported")
	fs.IntVar(&count, "count", 0, "submit this many tasks with random numbers and report (load and fault tests)")
	fs.IntVar(&concurrency, "concurrency", concurrency, "with --count: submissions (or batches) in flight at once")
	fs.IntVar(&batch, "batch", batch, fmt.Sprintf("with --count: tasks per request, a batch the master records together (1 to %d); 1: one task per request", message.MaxBatch))
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	var opts taskOptionFlags
	opts.bind(fs, true)
	var natsSec natsClientFlags
	natsSec.bind(fs)
	if err := parse(fs, args, m.Getenv); err != nil {
		return helpIsNoError(err)
	}
	natsOpts, err := natsSec.options()
	if err != nil {
		return usagef("submit: %w", err)
	}
	natsOpts = append(natsOpts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			notPermitted(err)
		}
	}))
	if err := checkServer(server); err != nil {
		return usagef("submit: %w", err)
	}
	if timeout <= 0 {
		return usagef("submit: --timeout %s: want more than 0", timeout)
	}
	if count < 0 || concurrency < 1 {
		return usagef("submit: --count must be >= 0 and --concurrency >= 1")
	}
	if batch < 1 || batch > message.MaxBatch {
		return usagef("submit: --batch %d: want 1 to %d", batch, message.MaxBatch)
	}
	if batch > 1 && count == 0 {
		return usagef("submit: --batch goes with --count")
	}
	if sub.Options, err = opts.options(fs); err != nil {
		return usagef("submit: %w", err)
	}
	if err := m.taskOf(&sub, payload, payloadFile); err != nil {
		return usagef("submit: %w", err)
	}
	c, err := client.Dial(server, natsOpts...)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if count > 0 {
		spec := client.LoadSpec{N: count, Concurrency: concurrency, Batch: batch, Wait: wait, Durability: sub.Durability, Options: sub.Options}
		if sub.Kind != message.KindTriple {
			spec.Kind, spec.Payload = sub.Kind, sub.Payload
		}
		rep, err := c.Load(ctx, spec)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		if asJSON {
			_ = json.NewEncoder(m.Stdout).Encode(rep)
		} else {
			fmt.Fprintf(m.Stdout, "submitted %d, accepted %d (%d answered as duplicates), refused %d, no master %d\n",
				rep.Submitted, rep.Accepted, rep.Duplicates, rep.Refused, rep.NoMaster)
			if wait {
				fmt.Fprintf(m.Stdout, "results %d, missing %d, results seen again %d\n", rep.Results, rep.Missing, rep.ExtraSeen)
			}
			fmt.Fprintf(m.Stdout, "took %s, %.0f accepted/s\n", rep.Took.Round(time.Millisecond), float64(rep.Accepted)/rep.Took.Seconds())
		}
		if rep.Accepted < rep.Submitted || (wait && rep.Missing > 0) {
			return errors.New("submit: not every task was accepted and answered")
		}
		return nil
	}

	if wait {
		if err := c.Follow(); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
	}
	reply, err := c.Submit(ctx, sub)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if !wait || (reply.Duplicate && reply.Result != nil && reply.Result.Error == "") {
		return m.print(asJSON, reply, fmt.Sprintf("accepted %s (term %d)%s", reply.UUID, reply.Term, duplicateNote(reply)))
	}
	// Only a final outcome ends the wait: a failed attempt may be
	// followed by another (client.Wait).
	res, err := c.Wait(ctx, reply.UUID)
	if err != nil {
		return fmt.Errorf("submit: accepted %s but %w", reply.UUID, err)
	}
	if err := m.print(asJSON, res, resultText(res)); err != nil {
		return err
	}
	if res.Error != "" {
		return fmt.Errorf("submit: task %s failed: %s", res.UUID, res.Error)
	}
	return nil
}

// taskOf completes sub from --kind, --payload, --payload-file and
// --number, as the master will read it.
func (m *Main) taskOf(sub *message.Submit, payload, payloadFile string) error {
	payload, err := m.payloadOf(payload, payloadFile)
	if err != nil {
		return err
	}
	if sub.Kind == "" && (payload != "" || payloadFile != "") {
		return errors.New("a payload needs --kind (the demo kind takes --number)")
	}
	if sub.Kind != "" && sub.Number != 0 {
		return errors.New("--number is the demo kind's; give --payload with --kind")
	}
	if sub.Kind != "" {
		if sub.Payload, err = jsonPayload(payload); err != nil {
			return err
		}
	}
	// The rest of the rules are the master's: read it as the master will.
	read, err := message.DecodeSubmit(sub.AppendJSON(nil))
	if err != nil {
		return err
	}
	read.UUID = sub.UUID // as given: the client canonicalises it itself
	*sub = read
	return nil
}

// payloadOf is the text of --payload, or of the file --payload-file names
// (- for stdin): "" when neither is given.
func (m *Main) payloadOf(payload, payloadFile string) (string, error) {
	if payload != "" && payloadFile != "" {
		return "", errors.New("give --payload or --payload-file, not both")
	}
	switch {
	case payloadFile == "-":
		stdin := m.Stdin
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		b, err := io.ReadAll(io.LimitReader(stdin, message.MaxData+1))
		if err != nil {
			return "", fmt.Errorf("cannot read the payload from stdin: %w", err)
		}
		return string(b), nil
	case payloadFile != "":
		b, err := os.ReadFile(payloadFile)
		if err != nil {
			return "", fmt.Errorf("cannot read the payload: %w", err)
		}
		return string(b), nil
	}
	return payload, nil
}

// jsonPayload checks a payload's text: JSON ("" is null) no larger than a
// node takes.
func jsonPayload(payload string) (json.RawMessage, error) {
	if payload = strings.TrimSpace(payload); payload == "" {
		payload = "null"
	}
	if !json.Valid([]byte(payload)) {
		return nil, fmt.Errorf("the payload is not JSON: %.60q (a string needs its quotes: '\"text\"')", payload)
	}
	if len(payload) > message.MaxData {
		return nil, fmt.Errorf("the payload is %d bytes, more than a node takes at most (%d)", len(payload), message.MaxData)
	}
	return json.RawMessage(payload), nil
}

// resultText is one line about a result.
func resultText(res message.Result) string {
	took := fmt.Sprintf("by %s (%s to %s)", res.Executor, res.Start, res.Finish)
	switch {
	case res.Error != "":
		return fmt.Sprintf("%s: %s failed %s: %s", res.UUID, res.Kind, took, res.Error)
	case res.Kind == message.KindTriple:
		return fmt.Sprintf("%s: %d*3 = %s %s", res.UUID, res.Number, res.Result, took)
	}
	return fmt.Sprintf("%s: %s %s: %s", res.UUID, res.Kind, took, res.Result)
}

func duplicateNote(r message.SubmitReply) string {
	if !r.Duplicate {
		return ""
	}
	if r.Result != nil {
		if r.Result.Error != "" {
			return fmt.Sprintf(", a duplicate: %s, error %s", r.State, r.Result.Error)
		}
		return fmt.Sprintf(", a duplicate: done, result %s", r.Result.Result)
	}
	return ", a duplicate: " + r.State
}

func (m *Main) print(asJSON bool, v any, text string) error {
	if asJSON {
		return json.NewEncoder(m.Stdout).Encode(v)
	}
	_, err := fmt.Fprintln(m.Stdout, text)
	return err
}
