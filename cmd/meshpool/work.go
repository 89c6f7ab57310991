package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshpool/meshpool"
	"github.com/meshpool/meshpool/command"
	"github.com/meshpool/meshpool/message"
	"github.com/meshpool/meshpool/node"
)

// workFlags are what a node runs as a worker and what its master holds:
// the kinds (the demo's and --exec commands), the slots, and the bounds on
// payloads, results and pending work. node and dev share them.
type workFlags struct {
	execs  execFlag
	noDemo bool
}

func (w *workFlags) bind(fs *flag.FlagSet, cfg *node.Config) {
	fs.Var(&w.execs, "exec", "run COMMAND for each task of KIND, as KIND=COMMAND (repeatable; in the environment separate several with ';'): payload on stdin, result on stdout")
	fs.BoolVar(&w.noDemo, "no-demo", false, "do not run the demo kind, "+message.KindTriple+" (the master still makes demo tasks with --task-interval, for other nodes)")
	fs.IntVar(&cfg.Slots, "slots", cfg.Slots, "how many tasks this node runs at once")
	fs.Var(byteSize[int]{&cfg.MaxPayload}, "max-payload", "largest task payload a submission may carry (e.g. 256KiB; at most 1MiB)")
	fs.Var(byteSize[int]{&cfg.MaxResult}, "max-result", "largest result a handler may return (e.g. 1MiB; at most 1MiB)")
	fs.IntVar(&cfg.MaxPending, "max-pending", cfg.MaxPending, "tasks the master holds accepted and not done, at most; beyond, submissions are refused as temporary")
	fs.Var(byteSize[int64]{&cfg.MaxPendingBytes}, "max-pending-bytes", "payload bytes of the pending tasks, at most (e.g. 256MiB)")
	fs.IntVar(&cfg.MaxEphemeral, "max-ephemeral", cfg.MaxEphemeral, "of the pending tasks, those of --durability none, at most; beyond, such submissions are refused as temporary")
	fs.IntVar(&cfg.MaxPendingPerSubmitter, "max-pending-per-submitter", cfg.MaxPendingPerSubmitter, "of the pending tasks, those of one submitter (a NATS user, on tasks.submit.<user>; anonymous submissions are not bound by it), at most; default a quarter of --max-pending; 0 for no bound; beyond, its submissions are refused as temporary")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", cfg.MaxAttempts, "attempts a task gets when its submission does not say (1-100)")
	fs.DurationVar(&cfg.Backoff, "backoff", cfg.Backoff, "wait before a task's second attempt when its submission does not say; doubles after each attempt")
	fs.DurationVar(&cfg.BackoffMax, "backoff-max", cfg.BackoffMax, "longest wait between two attempts of a task when its submission does not say")
	fs.DurationVar(&cfg.FailedRetention, "failed-retention", cfg.FailedRetention, "keep failed and cancelled tasks' records this long: the dead-letter list")
}

// handlers builds the node's kinds: the demo's unless --no-demo, and one
// per --exec. A command that cannot run is refused here, at start.
// perSubmitterDefault makes --max-pending-per-submitter, when not given,
// a quarter of --max-pending, so that lowering --max-pending alone keeps a
// flooding submitter to a quarter of it.
func perSubmitterDefault(fs *flag.FlagSet, cfg *node.Config) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "max-pending-per-submitter" })
	if !set {
		cfg.MaxPendingPerSubmitter = max(1, cfg.MaxPending/4)
	}
}

func (w *workFlags) handlers(cfg node.Config) (*meshpool.Mux, error) {
	mux := meshpool.NewMux()
	if !w.noDemo {
		mux.Handle(message.KindTriple, node.Triple(cfg.WorkTime))
	}
	for _, e := range w.execs {
		if _, ok := mux.Handler(e.kind); ok {
			return nil, fmt.Errorf("--exec %s: kind %s has a handler already", e.kind, e.kind)
		}
		h, err := command.New(e.cmdline, command.Options{MaxResult: cfg.MaxResult, KillGrace: node.KillGrace(cfg.TaskTimeout)})
		if err != nil {
			return nil, fmt.Errorf("--exec %s: %w", e.kind, err)
		}
		mux.Handle(e.kind, h)
	}
	if len(mux.Kinds()) == 0 {
		return nil, errors.New("--no-demo and no --exec: this node would run no kind of task")
	}
	return mux, nil
}

// execFlag is the repeatable --exec KIND=COMMAND.
type execFlag []execKind

type execKind struct{ kind, cmdline string }

func (f *execFlag) String() string {
	s := make([]string, len(*f))
	for i, e := range *f {
		s[i] = e.kind + "=" + e.cmdline
	}
	return strings.Join(s, ";")
}

func (f *execFlag) Set(v string) error {
	for _, one := range strings.Split(v, ";") {
		if strings.TrimSpace(one) == "" {
			continue
		}
		kind, cmdline, ok := strings.Cut(one, "=")
		kind, cmdline = strings.TrimSpace(kind), strings.TrimSpace(cmdline)
		if !ok || cmdline == "" {
			return fmt.Errorf("%q: want KIND=COMMAND", one)
		}
		if err := message.ValidKind(kind); err != nil {
			return err
		}
		*f = append(*f, execKind{kind, cmdline})
	}
	return nil
}

// byteSize is an integer flag of bytes that also takes KiB, MiB and GiB.
type byteSize[T int | int64] struct{ n *T }

func (b byteSize[T]) String() string {
	if b.n == nil {
		return ""
	}
	return formatBytes(int64(*b.n))
}

func (b byteSize[T]) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b.n = T(n)
	return nil
}

var byteUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func parseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a number of bytes, e.g. 262144, 256KiB or 1MiB", s)
	}
	return n * mult, nil
}

func formatBytes(n int64) string {
	for _, u := range byteUnits {
		if n >= u.n && n%u.n == 0 && u.n > 1 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
