package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/meshpool/meshpool"
)

// The defaults of Options's zero fields.
const (
	DefaultMaxResult = 1 << 20
	DefaultKillGrace = 5 * time.Second
)

// ExitPermanent is the exit status with which a program says its task's
// error is permanent: no more attempts, the task fails now (see
// meshpool.Permanent). It is EX_DATAERR of sysexits.h: the input data was
// wrong. Any other non-zero status is an attempt's failure, tried again
// while the task has attempts left.
const ExitPermanent = 65

// Options tune a command handler. The zero value is ready to use.
type Options struct {
	// MaxResult is how many bytes of stdout a task may write; more is the
	// task's error, not a truncated result. 0 means DefaultMaxResult.
	MaxResult int
	// KillGrace is how long the program has between SIGTERM and SIGKILL
	// when the task's context ends. 0 means DefaultKillGrace.
	KillGrace time.Duration
	// Env is added to the node's environment, as KEY=value entries. It may
	// be nil.
	Env []string
}

// handler runs one program per task. It is not changed after New, so any
// number of tasks may run at once.
type handler struct {
	path      string   // the program, as New found it
	args      []string // the command line's words, the program's name first
	env       []string // the node's environment and Options.Env
	maxResult int
	killGrace time.Duration
}

// New returns a Handler that runs cmdline for each task. cmdline is split on
// white space and run without a shell (see the package doc). New fails when
// cmdline is empty, when its program is not found or is not an executable
// regular file, or when an option is negative.
func New(cmdline string, opts Options) (meshpool.Handler, error) {
	if errPlatform != nil {
		return nil, errPlatform
	}
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return nil, errors.New("command: empty command line")
	}
	if opts.MaxResult < 0 {
		return nil, fmt.Errorf("command: MaxResult is negative: %d", opts.MaxResult)
	}
	if opts.KillGrace < 0 {
		return nil, fmt.Errorf("command: KillGrace is negative: %s", opts.KillGrace)
	}
	path, err := find(args[0])
	if err != nil {
		return nil, err
	}
	h := &handler{
		path:      path,
		args:      args,
		env:       append(os.Environ(), opts.Env...),
		maxResult: opts.MaxResult,
		killGrace: opts.KillGrace,
	}
	if h.maxResult == 0 {
		h.maxResult = DefaultMaxResult
	}
	if h.killGrace == 0 {
		h.killGrace = DefaultKillGrace
	}
	return h, nil
}

// find returns the program called name: a path when name has a slash, else
// the first in $PATH.
func find(name string) (string, error) {
	if !strings.ContainsRune(name, '/') {
		path, err := exec.LookPath(name)
		if err != nil {
			var ee *exec.Error
			if errors.As(err, &ee) {
				err = ee.Err // its text repeats the name after "exec: "
			}
			return "", fmt.Errorf("command: %q: %w", name, err)
		}
		return path, nil
	}
	fi, err := os.Stat(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // its text repeats the name after "stat "
		}
		return "", fmt.Errorf("command: %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("command: %q: not a regular file", name)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("command: %q: not executable", name)
	}
	return name, nil
}

// Work runs the program for t and returns its result (see the package doc).
func (h *handler) Work(ctx context.Context, t *meshpool.Task) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("command: cancelled: %w", err)
	}
	env := make([]string, 0, len(h.env)+3)
	env = append(env, h.env...)
	env = append(env,
		"MESHPOOL_TASK_UUID="+t.UUID,
		"MESHPOOL_TASK_KIND="+t.Kind,
		"MESHPOOL_TASK_ATTEMPT="+strconv.Itoa(t.Attempt))
	r, err := start(h, env, t.Payload)
	if err != nil {
		return nil, err
	}
	end := r.supervise(ctx)

	switch {
	case end.cancelled:
		return nil, fmt.Errorf("command: cancelled: %w%s", ctx.Err(), also("; stderr: ", end.stderr))
	case len(end.stdout) > h.maxResult:
		return nil, fmt.Errorf("command: result is larger than %d bytes", h.maxResult)
	case end.wait != nil:
		var ee *exec.ExitError
		if errors.As(end.wait, &ee) && ee.ExitCode() == ExitPermanent {
			return nil, meshpool.Permanent(fmt.Errorf("command: %w (permanent: no more attempts)%s", ee, also(": ", end.stderr)))
		}
		if errors.As(end.wait, &ee) {
			return nil, fmt.Errorf("command: %w%s", ee, also(": ", end.stderr))
		}
		return nil, fmt.Errorf("command: cannot wait for the program: %w", end.wait)
	case end.read != nil:
		return nil, fmt.Errorf("command: cannot read the result: %w", end.read)
	}
	return result(end.stdout), nil
}

// also returns sep and s, or nothing when s is empty.
func also(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// result turns the program's stdout into the task's result: trimmed, as it
// is when it is one JSON value, a JSON string when it is not, null when it
// is empty; always valid UTF-8.
func result(out []byte) json.RawMessage {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil
	}
	if json.Valid(out) {
		// Not UTF-8 can only be inside strings, where U+FFFD keeps it JSON.
		return bytes.ToValidUTF8(out, []byte("\uFFFD"))
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(out)) // a string always encodes; not UTF-8 becomes U+FFFD
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
