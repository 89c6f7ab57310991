// Submits one task to a meshpool cluster over NATS and prints its result as
// one JSON line: the wire contract, spoken from JavaScript with no meshpool
// code at all.
//
//	npm ci
//	NATS_URL=nats://127.0.0.2:4222 node submit.mjs sha256 '"hello"'
//
// It exits 0 with the result, 1 when the task failed (its "error") or no
// result came within 30 s, 2 on a usage error.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, ErrorCode } from "nats";

const TIMEOUT_MS = 30_000;

async function main(argv) {
  const [kind, payloadText = "null"] = argv;
  if (!kind) {
    console.error("usage: node submit.mjs KIND [PAYLOAD]   (PAYLOAD is JSON: a string needs its quotes)");
    return 2;
  }
  let payload;
  try {
    payload = JSON.parse(payloadText);
  } catch (err) {
    console.error(`the payload is not JSON: ${err.message}`);
    return 2;
  }
  // A uuid of our own, the idempotency key: the task runs once however
  // often it is submitted, and the result on "results" is matched by it.
  const uuid = randomUUID();
  const submission = new TextEncoder().encode(JSON.stringify({ kind, payload, uuid }));
  const deadline = Date.now() + TIMEOUT_MS;

  const servers = process.env.NATS_URL || "nats://127.0.0.1:4222";
  let nc;
  try {
    nc = await connect({ servers });
  } catch (err) {
    console.error(`cannot connect to ${servers}: ${err.message}`);
    return 1;
  }
  try {
    let found;
    const result = new Promise((resolve) => (found = resolve));
    nc.subscribe("results", {
      callback: (err, msg) => {
        if (err) return;
        try {
          const r = JSON.parse(new TextDecoder().decode(msg.data));
          if (r.uuid === uuid) found(r);
        } catch {
          // not a result: anyone may publish on the subject
        }
      },
    });
    await nc.flush(); // subscribed before the task can finish

    // Submit, then wait for the result. A publication on "results" may miss
    // a subscription that has not reached the worker's node yet, so now and
    // then submit again: the master answers a task that is done with its
    // result. The same request also rides out a moment with no master.
    let res;
    for (let wait = 500; !res; wait = Math.min(2 * wait, 4000)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        console.error(`no result for ${uuid} within ${TIMEOUT_MS / 1000} s`);
        return 1;
      }
      const reply = await ask(nc, submission, Math.min(2000, left));
      if (reply && !reply.accepted && !reply.temporary) {
        console.error(`not accepted: ${reply.error}`);
        return 1;
      }
      res = reply?.result ?? (await Promise.race([result, sleep(Math.min(wait, left))]));
    }
    console.log(JSON.stringify(res));
    if (res.error) {
      console.error(`task ${res.uuid} failed on ${res.executor}: ${res.error}`);
      return 1;
    }
    return 0;
  } finally {
    await nc.close();
  }
}

// ask sends the submission on tasks.submit and returns the master's answer,
// or undefined when none came (no master right now, or it was slow).
async function ask(nc, submission, timeout) {
  try {
    const msg = await nc.request("tasks.submit", submission, { timeout });
    return JSON.parse(new TextDecoder().decode(msg.data));
  } catch (err) {
    if (err.code === ErrorCode.NoResponders || err.code === ErrorCode.Timeout) return undefined;
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.message ?? err);
    process.exit(1);
  },
);
