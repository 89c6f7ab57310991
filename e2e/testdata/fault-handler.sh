#!/bin/sh
# The fault suite's handler, for the kind echo (e2e/faults_test.go):
#
#   meshpool node --exec echo=/abs/path/to/fault-handler.sh
#
# It works a little, as the demo kind does, and answers {"echo":PAYLOAD},
# so the suite can tell each task's result from another's. A payload that
# holds "fail":1 fails its first attempt: the task is retried. The payload is
# one line of JSON on stdin, without a newline at the end: read returns
# non-zero at end of file but has read the line.
set -eu
if ! IFS= read -r payload && [ -z "$payload" ]; then
	echo "no payload on stdin" >&2
	exit 1
fi
sleep 0.02
case "$payload" in
*'"fail":1'*)
	if [ "${MESHPOOL_TASK_ATTEMPT:-1}" -le 1 ]; then
		echo "flaky: attempt $MESHPOOL_TASK_ATTEMPT fails" >&2
		exit 1
	fi
	;;
esac
printf '{"echo":%s}\n' "$payload"
