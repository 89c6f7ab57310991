package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUsageErrors runs the command in process with bad flags: every one is
// refused before anything starts, in one line, with exit code 2.
func TestUsageErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A node that wrongly starts must not take the default ports.
	node := []string{"node", "--advertise", "127.0.0.1", "--client-port", "-1", "--cluster-port", "-1", "--http-port", "-1"}
	tests := []struct {
		name string
		args []string
		want string // the error says this
	}{
		{"two bad node flags", append(node, "--ttl", "1s", "--prefix", "x"), `prefix must start with '/', got "x"; ttl must be at least 2s`},
		{"node zero ttl", append(node, "--ttl", "0"), `node: --ttl "0s": zero is not a setting of this flag; leave it out for the default 10s`},
		{"node zero port and task timeout", append(node, "--client-port", "0", "--task-timeout", "0s"), `--client-port "0": zero is not a setting of this flag; leave it out for the default 4222; --task-timeout "0s"`},
		{"node empty prefix", append(node, "--prefix", ""), `--prefix "": zero is not a setting`},
		{"dev zero ttl", []string{"dev", "--ttl", "0"}, `dev: --ttl "0s": zero is not a setting`},
		{"node etcd port not a number", append(node, "--etcd", "localhost:abc"), `etcd endpoint "localhost:abc": port "abc"`},
		{"node etcd port out of range", append(node, "--etcd", "127.0.0.1:70000"), `port "70000"`},
		{"node etcd port zero", append(node, "--etcd", "http://127.0.0.1:0"), `port "0"`},
		{"node etcd without a port", append(node, "--etcd", "localhost"), `etcd endpoint "localhost": want host:port`},
		{"node etcd with a path", append(node, "--etcd", "http://127.0.0.1:2379/v3"), `etcd endpoint "http://127.0.0.1:2379/v3"`},
		{"node etcd other scheme", append(node, "--etcd", "unix://127.0.0.1:2379"), `etcd endpoint "unix://127.0.0.1:2379"`},
		{"node missing etcd CA file", append(node, "--etcd-cacert", "/nonexistent/ca.pem"), "/nonexistent/ca.pem"},
		{"node missing NATS CA file", append(node, "--nats-ca", "/nonexistent/ca.pem", "--nats-cert", notPEM, "--nats-key", notPEM), "--nats-ca"},
		{"node NATS certificate not PEM", append(node, "--nats-ca", notPEM, "--nats-cert", notPEM, "--nats-key", notPEM), "--nats-ca"},
		{"status etcd port not a number", []string{"status", "--etcd", "localhost:abc"}, `port "abc"`},
		{"status etcd without a port", []string{"status", "--etcd", "127.0.0.1"}, `etcd endpoint "127.0.0.1"`},
		{"status bad prefix", []string{"status", "--prefix", "meshpool/"}, "--prefix"},
		{"status zero timeout", []string{"status", "--timeout", "0"}, "--timeout 0s"},
		{"status negative interval", []string{"status", "--watch", "--interval", "-1s"}, "--interval -1s"},
		{"status missing etcd CA file", []string{"status", "--etcd-cacert", "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{"submit zero timeout", []string{"submit", "--number", "1", "--timeout", "0"}, "--timeout 0s: want more than 0"},
		{"submit negative timeout", []string{"submit", "--number", "1", "--timeout", "-1s"}, "--timeout -1s: want more than 0"},
		{"submit bad server scheme", []string{"submit", "--number", "1", "--server", "http://127.0.0.1:4222"}, `scheme "http"`},
		{"submit bad server port", []string{"submit", "--number", "1", "--server", "nats://127.0.0.1:99999"}, `port "99999"`},
		{"submit server without host", []string{"submit", "--number", "1", "--server", ":::"}, `--server ":::"`},
		{"submit missing NATS CA file", []string{"submit", "--number", "1", "--nats-ca", "/nonexistent/ca.pem"}, "--nats-ca"},
		{"watch bad server", []string{"watch", "--server", "nats://127.0.0.1:port"}, "--server"},
		{"watch missing NATS CA file", []string{"watch", "--nats-ca", "/nonexistent/ca.pem"}, "--nats-ca"},
		{"dev etcd port too high", []string{"dev", "--etcd-port", "70000"}, "--etcd-port 70000"},
		{"dev etcd port zero", []string{"dev", "--etcd-port", "0"}, "--etcd-port 0"},
		{"dev bad node flags, before etcd starts", []string{"dev", "--etcd-port", "23799", "--ttl", "1s", "--client-port", "70000"}, "client port 70000: want 1-65535; ttl must be at least 2s"},
		{"node --exec of a missing command", append(node, "--exec", "resize=/nonexistent/resize.sh"), `node: --exec resize: command: "/nonexistent/resize.sh"`},
		{"node --exec of a file not executable", append(node, "--exec", "resize="+notPEM), "not executable"},
		{"node --exec without a command", append(node, "--exec", "resize"), `"resize": want KIND=COMMAND`},
		{"node --exec bad kind", append(node, "--exec", "re.size=/bin/true"), `kind "re.size" has a character`},
		{"node --exec a kind twice", append(node, "--exec", "a=/bin/true", "--exec", "a=/bin/false"), "kind a has a handler already"},
		{"node no kind at all", append(node, "--no-demo"), "this node would run no kind of task"},
		{"node zero slots", append(node, "--slots", "0"), `--slots "0": zero is not a setting`},
		{"node negative slots", append(node, "--slots", "-2"), "slots -2: want at least 1"},
		{"node payload too large", append(node, "--max-payload", "2MiB"), "max payload 2097152"},
		{"node payload and result together too large", append(node, "--max-payload", "1MiB", "--max-result", "1MiB"), "want at most 1310720 bytes together"},
		{"node bad byte size", append(node, "--max-result", "1 lot"), `"1 lot": want a number of bytes`},
		{"submit payload not JSON", []string{"submit", "--kind", "k", "--payload", "{bad"}, "the payload is not JSON"},
		{"submit payload without kind", []string{"submit", "--payload", "1"}, "a payload needs --kind"},
		{"submit number with another kind", []string{"submit", "--kind", "k", "--number", "3"}, "--number is the demo kind's"},
		{"submit bad kind", []string{"submit", "--kind", "a b", "--payload", "1"}, `kind "a b" has a character`},
		{"submit missing payload file", []string{"submit", "--kind", "k", "--payload-file", "/nonexistent/p.json"}, "cannot read the payload"},
		{"submit bad max attempts", []string{"submit", "--number", "1", "--max-attempts", "0"}, "--max-attempts 0: want 1 to 100"},
		{"submit bad priority", []string{"submit", "--number", "1", "--priority", "10"}, "--priority 10: want 0 to 9"},
		{"submit zero task timeout", []string{"submit", "--number", "1", "--task-timeout", "0s"}, "--task-timeout 0s: want more than 0"},
		{"submit negative delay", []string{"submit", "--number", "1", "--delay", "-1s"}, "--delay -1s: want more than 0"},
		{"submit backoff too long", []string{"submit", "--number", "1", "--backoff", "25h"}, "--backoff 25h0m0s: want more than 0 and at most 24h"},
		{"submit zero backoff max", []string{"submit", "--number", "1", "--backoff-max", "0"}, "--backoff-max 0s"},
		{"submit bad run-at", []string{"submit", "--number", "1", "--run-at", "tomorrow"}, `--run-at "tomorrow": want an RFC 3339 time`},
		{"submit delay and run-at", []string{"submit", "--number", "1", "--delay", "1m", "--run-at", "2030-01-02T15:04:05Z"}, "give --delay or --run-at, not both"},
		{"get without a uuid", []string{"get"}, "get: want the task's UUID"},
		{"get two uuids", []string{"get", "a", "b"}, `get: unexpected argument "b"`},
		{"get bad server", []string{"get", "x", "--server", "http://127.0.0.1:4222"}, `scheme "http"`},
		{"get zero timeout", []string{"get", "x", "--timeout", "0"}, "get: --timeout 0s: want more than 0"},
		{"get missing NATS CA file", []string{"get", "x", "--nats-ca", "/nonexistent/ca.pem"}, "--nats-ca"},
		{"tasks bad state", []string{"tasks", "--state", "finished"}, `tasks: --state: message: invalid: state "finished"`},
		{"tasks bad kind", []string{"tasks", "--kind", "a b"}, "tasks: --kind"},
		{"tasks limit too high", []string{"tasks", "--limit", "1001"}, "tasks: --limit 1001: want 1 to 1000"},
		{"tasks an argument", []string{"tasks", "x"}, `tasks: unexpected argument "x"`},
		{"cancel without a uuid", []string{"cancel"}, "cancel: want the task's UUID"},
		{"retry without a uuid or state", []string{"retry"}, "retry: want a UUID, or --state failed"},
		{"retry a state not final", []string{"retry", "--state", "running"}, "retry: want a UUID, or --state failed"},
		{"retry a uuid and a state", []string{"retry", "x", "--state", "failed"}, "retry: give a UUID, or --state (and --kind), not both"},
		{"retry zero limit", []string{"retry", "--state", "failed", "--limit", "0"}, "retry: --limit 0"},
		{"schedule without a command", []string{"schedule"}, "schedule: want add, remove or list"},
		{"schedule unknown command", []string{"schedule", "show"}, `schedule: unknown command "show"`},
		{"schedule add without a name", []string{"schedule", "add", "--cron", "@hourly", "--kind", "k"}, "schedule add: want the schedule's NAME"},
		{"schedule add without cron", []string{"schedule", "add", "n", "--kind", "k"}, "schedule add: --cron is required"},
		{"schedule add without kind", []string{"schedule", "add", "n", "--cron", "@hourly"}, "schedule add: --kind is required"},
		{"schedule add bad cron", []string{"schedule", "add", "n", "--cron", "every day", "--kind", "k"}, `cron "every day"`},
		{"schedule add bad name", []string{"schedule", "add", "a/b", "--cron", "@hourly", "--kind", "k"}, "schedule add:"},
		{"schedule add payload not JSON", []string{"schedule", "add", "n", "--cron", "@hourly", "--kind", "k", "--payload", "{"}, "the payload is not JSON"},
		{"schedule add bad priority", []string{"schedule", "add", "n", "--cron", "@hourly", "--kind", "k", "--priority", "-1"}, "--priority -1"},
		{"schedule add takes no delay", []string{"schedule", "add", "n", "--cron", "@hourly", "--kind", "k", "--delay", "1m"}, "flag provided but not defined: -delay"},
		{"schedule add bad durability", []string{"schedule", "add", "n", "--cron", "@hourly", "--kind", "k", "--durability", "maybe"}, `durability "maybe"`},
		{"schedule remove without a name", []string{"schedule", "remove"}, "schedule remove: want the schedule's NAME"},
		{"schedule list bad server", []string{"schedule", "list", "--server", "nats://127.0.0.1:0"}, `port "0"`},
		{"secure-setup bad IP", []string{"secure-setup", "--dir", filepath.Join(t.TempDir(), "s"), "--node-ips", "1.2.3", "--etcd-ips", "127.0.0.1"}, "--node-ips"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
			// Should the command wrongly start, it stops here.
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			code := exitCode(m.Run(ctx, tt.args), &stderr)
			out := stderr.String()
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("stderr %q does not say %q", out, tt.want)
			}
			if strings.Count(strings.TrimSuffix(out, "\n"), "\n") != 0 {
				t.Errorf("want one line, got:\n%s", out)
			}
			if stdout.Len() != 0 {
				t.Errorf("an error printed to stdout: %q", stdout.String())
			}
		})
	}
}
