#!/bin/sh
# A meshpool handler in shell: the sha256 of the task's payload.
#
#   meshpool node --exec sha256=examples/exec/sha256.sh
#   meshpool submit --server nats://127.0.0.2:4222 --kind sha256 --payload '"hello"' --wait
#
# The payload arrives on stdin, exactly as submitted (here the JSON string
# "hello", quotes included). Whatever is printed on stdout is the result: it
# is kept as JSON when it is JSON, else as a string. A non-zero exit is the
# task's error, with the last lines of stderr.
set -eu
sum=$(sha256sum | cut -d' ' -f1)
if [ -z "$sum" ]; then
	echo "sha256sum printed nothing" >&2
	exit 1
fi
printf '{"sha256":"%s","task":"%s","attempt":%s}\n' "$sum" "$MESHPOOL_TASK_UUID" "$MESHPOOL_TASK_ATTEMPT"
