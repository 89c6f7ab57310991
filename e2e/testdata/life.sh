#!/bin/sh
# The handler of e2e/life_test.go's kinds, one script for all of them:
# each node runs it as --exec KIND=/abs/path/to/life.sh for several kinds,
# and it does what $MESHPOOL_TASK_KIND says. The payload is a JSON object
# with "dir", a directory the test reads, and for some kinds a number.
set -eu
IFS= read -r payload || true
dir=$(printf '%s' "$payload" | sed -n 's/.*"dir":"\([^"]*\)".*/\1/p')
num() { printf '%s' "$payload" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
[ -n "$dir" ] && echo "$MESHPOOL_TASK_UUID $MESHPOOL_TASK_ATTEMPT $(date +%s.%N)" >>"$dir/runs"
case "$MESHPOOL_TASK_KIND" in
flaky) # fails until attempt "until"
	if [ "$MESHPOOL_TASK_ATTEMPT" -lt "$(num until)" ]; then
		echo "flaky: attempt $MESHPOOL_TASK_ATTEMPT fails" >&2
		exit 1
	fi
	;;
perm) # a permanent error, unless "$dir/ok" exists
	if [ ! -e "$dir/ok" ]; then
		echo "bad input: no $dir/ok" >&2
		exit 65
	fi
	;;
poison) # kills the worker that runs it
	kill -9 "$PPID"
	sleep 5
	;;
hang) # runs until killed; its pid is in "$dir/<uuid>.<attempt>.pid"
	echo $$ >"$dir/$MESHPOOL_TASK_UUID.$MESHPOOL_TASK_ATTEMPT.pid"
	exec sleep 120
	;;
esac
printf '%s\n' "$payload"
