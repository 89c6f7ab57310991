// Package command works tasks by running an external program, one process
// per task: the handler behind `meshpool node --exec KIND=COMMAND`, through
// which a worker in any language plugs in.
//
// The command line is split on white space (strings.Fields) and run without
// a shell: no quoting, no pipes, no variables. Anything more is a script.
// New looks the program up once; a name without a slash is searched in $PATH.
//
// What the program sees and what it must do:
//
//   - stdin is the task's payload, a JSON value, then end of file.
//   - The environment is the node's, then Options.Env, then
//     MESHPOOL_TASK_UUID, MESHPOOL_TASK_KIND and MESHPOOL_TASK_ATTEMPT
//     (from 1; the uuid is the same on every attempt, an idempotency key).
//   - stdout is the result. Surrounding white space is trimmed; output that
//     is one JSON value is the result as it is (so "42" is a number), any
//     other output is the result as a JSON string, and no output is null.
//     Bytes that are not UTF-8 become U+FFFD. More than Options.MaxResult
//     bytes is the task's error, not a truncated result.
//   - Exit status 0 is success. Any other ending is the task's error, with
//     the end of stderr (its last 10 lines, at most 4 KiB) in the text.
//     The task is tried again while it has attempts left, except after
//     exit status ExitPermanent (65, EX_DATAERR: the input data was wrong):
//     that error is permanent (meshpool.Permanent), and the task fails now.
//
// Each program runs in a process group of its own. When the task's context
// ends (timeout, cancellation, shutdown), the group gets SIGTERM and, if the
// program has not exited within Options.KillGrace, SIGKILL. Once the program
// (the group's leader) has exited, for whatever reason, whatever it left
// behind in its group is killed with SIGKILL, so a task leaves no process.
// A descendant that left the group (setsid) is out of reach: Work waits for
// it to close stdout and stderr for at most KillGrace.
package command
