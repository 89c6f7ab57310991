package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/meshpool/meshpool/node"
)

// newFlagSet makes a flag set whose errors come back as one-line usage
// errors instead of being printed with the whole usage text.
func newFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("meshpool "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	usage := "meshpool " + name + " [flags]"
	if strings.HasPrefix(synopsis, "meshpool ") { // a command with arguments says how it is called
		usage, synopsis, _ = strings.Cut(synopsis, "\n\n")
		usage = strings.ReplaceAll(usage, "\n", "\n       ")
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s\n\n%s\n\nFlags (each also MESHPOOL_<FLAG> in the environment):\n", usage, synopsis)
		fs.SetOutput(out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse reads the environment first and the command line second, so a flag
// given on the command line wins. -h prints the usage and returns errHelp;
// any other mistake comes back as a one-line usage error.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	_, err := parseArgs(fs, args, getenv)
	return err
}

// parseArgs is parse for a command that takes arguments, named by names,
// before, between or after its flags: it returns those given, at most
// len(names); the command checks for missing ones.
func parseArgs(fs *flag.FlagSet, args []string, getenv func(string) string, names ...string) ([]string, error) {
	name := strings.TrimPrefix(fs.Name(), "meshpool ")
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := "MESHPOOL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return nil, usagef("%s: %w", name, err)
	}
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error
	defer func() { fs.Usage = usage }()
	var given []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, errHelp
		}
		if err != nil {
			return nil, usagef("%s: %w (see 'meshpool %s --help')", name, err, name)
		}
		if fs.NArg() == 0 {
			return given, nil
		}
		if len(given) == len(names) {
			return nil, usagef("%s: unexpected argument %q (see 'meshpool %s --help')", name, fs.Arg(0), name)
		}
		given, args = append(given, fs.Arg(0)), fs.Args()[1:]
	}
}

// noZero are the flags whose zero is not a setting of its own. To a
// node.Config a zero field means its default; on the command line or in the
// environment a 0 or an empty value is more likely a mistake (a port 0
// meant as "any port", a --task-timeout 0 meant as "none"), so it is
// refused instead of quietly becoming the default.
var noZero = []string{"etcd", "prefix", "cluster-name", "ttl", "task-timeout", "client-port", "cluster-port", "http-port",
	"slots", "max-payload", "max-result", "max-pending", "max-pending-bytes", "max-ephemeral", "max-attempts", "backoff", "backoff-max", "failed-retention"}

// refuseZero says which of the noZero flags were given as zero.
func refuseZero(fs *flag.FlagSet) error {
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(noZero, f.Name) {
			return
		}
		switch v := f.Value.String(); v {
		case "", "0", "0s":
			errs = append(errs, fmt.Errorf("--%s %q: zero is not a setting of this flag; leave it out for the default %s", f.Name, v, f.DefValue))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usagef("%s: %w", strings.TrimPrefix(fs.Name(), "meshpool "), err) // main prints it on one line
	}
	return nil
}

// checkServer accepts what --server takes: NATS URLs, comma-separated,
// each nats://, tls://, ws:// or wss:// (or no scheme: nats://) with a host
// and an optional numeric port.
func checkServer(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("--server: want a NATS URL, e.g. nats://127.0.0.2:4222")
	}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("--server %q: want a NATS URL such as nats://127.0.0.2:4222", s)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("--server %q: scheme %q: want nats://, tls://, ws:// or wss://", s, p.Scheme)
		}
		host, port, err := net.SplitHostPort(p.Host)
		if err != nil { // no port: nats:// takes 4222
			host, port = strings.Trim(p.Host, "[]"), "4222"
		}
		if host == "" || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return fmt.Errorf("--server %q: want a NATS URL with a host, such as nats://127.0.0.2:4222", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--server %q: port %q: want 1-65535", s, port)
		}
	}
	return nil
}

// errHelp means the usage was printed on request: exit 0.
var errHelp = errors.New("help requested")

// listFlag is a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return errors.New("want a comma-separated list")
	}
	*l = out
	return nil
}

// workTimeFlag is a node.WorkTime range such as 1s-15s.
type workTimeFlag struct{ w *node.WorkTime }

func (f workTimeFlag) String() string {
	if f.w == nil {
		return ""
	}
	return f.w.String()
}
func (f workTimeFlag) Set(s string) error {
	w, err := node.ParseWorkTime(s)
	if err != nil {
		return err
	}
	*f.w = w
	return nil
}

// commonFlags are the flags node and dev share: the cluster and the demo job.
type commonFlags struct {
	logFormat, logLevel string
}

func bindCommon(fs *flag.FlagSet, cfg *node.Config, c *commonFlags) {
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "etcd key prefix of this cluster")
	fs.StringVar(&cfg.ClusterName, "cluster-name", cfg.ClusterName, "NATS cluster name, the same on every node")
	fs.DurationVar(&cfg.TTL, "ttl", cfg.TTL, "lease TTL: a crashed node is noticed within it (whole seconds, >= 2s)")
	fs.DurationVar(&cfg.TaskInterval, "task-interval", cfg.TaskInterval, "how often the master makes a demo task (0 = never)")
	fs.Var(workTimeFlag{&cfg.WorkTime}, "work-time", "range of time a worker spends on a demo task, MIN-MAX")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "how long a stopping worker may finish tasks in flight (0 = do not wait)")
	fs.DurationVar(&cfg.TaskTimeout, "task-timeout", cfg.TaskTimeout, "how long one attempt of a task may run when its submission does not say; then it is retried")
	fs.DurationVar(&cfg.ResultRetention, "result-retention", cfg.ResultRetention, "keep done tasks' records this long, to answer re-submissions (0 = delete at once)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// newLogger builds the process logger from --log-format and --log-level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		}
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usagef("--log-format %q: want text or json", format)
	}
}
