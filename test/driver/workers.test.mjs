/**
 * evloop in Workers: a Worker that sits in runMain can be terminated (and gets its messages
 * meanwhile), and a Worker that goes away, terminated or not, closes the fds evloop opened for
 * it. Each case runs in a child process (worker-fixture.mjs) with a time limit: a Worker that
 * cannot be stopped also makes its process's exit hang, and must fail the test, not hang the
 * file. The termination times are printed as diagnostics; they are not asserted (timing
 * belongs in benchmarks).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { availableBackends } from "evloop";

const FIXTURE = fileURLToPath(new URL("./worker-fixture.mjs", import.meta.url));
const CHILD_LIMIT_MS = 30_000;

/** Runs a fixture scenario in a child process and returns the JSON it printed. */
function scenario(name, backend) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FIXTURE, name, backend], { timeout: CHILD_LIMIT_MS, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `did not finish within ${CHILD_LIMIT_MS} ms (a Worker that cannot be stopped?)` : error.message;
        reject(new Error(`${name} on ${backend}: the child ${why}\n${stderr}`));
        return;
      }
      const line = stdout.trim().split("\n").at(-1);
      resolve(JSON.parse(line));
    });
  });
}

for (const backend of availableBackends()) {
  describe(`Workers on ${backend}`, () => {
    test("worker.terminate() ends a Worker idle in runMain, which meanwhile gets its messages", async (t) => {
      const r = await scenario("idle", backend);
      for (const wait of ["sleep", "read"]) {
        const { echo, settled, exited, ms } = r[wait];
        assert.equal(settled, true, `terminate() did not settle for a Worker waiting in a ${wait}`);
        assert.equal(exited, true, `no 'exit' event for a Worker waiting in a ${wait}`);
        // A blocking backend's read holds the thread inside the operation: no message there.
        if (!(backend === "blocking" && wait === "read")) assert.equal(echo, "echo ping", `the Worker waiting in a ${wait} did not answer a message`);
        t.diagnostic(`${backend}: terminate() of a Worker waiting in a ${wait}: ${ms.toFixed(1)} ms`);
      }
    });

    test("a Worker terminated mid-transfer closes its sockets and loop fds", async (t) => {
      const r = await scenario("transfer-terminate", backend);
      assert.equal(r.midTransfer, true, "the peers did not receive the start of the transfer");
      assert.equal(r.settled, true, "terminate() did not settle");
      assert.equal(r.exited, true, "no 'exit' event");
      assert.equal(r.peers, 2);
      assert.equal(r.after, r.baseline, "the process has more open fds than before the Worker");
      await t.test("the peers see the end of their connections", () => {
        assert.equal(r.peersClosed, true, "a peer never saw the end of its connection");
      });
    });

    test("a Worker that returns with its sockets open closes them as it exits", async () => {
      const r = await scenario("transfer-exit", backend);
      assert.equal(r.exited, true, "the Worker did not exit");
      assert.equal(r.peers, 2);
      assert.equal(r.peersClosed, true, "a peer never saw the end of its connection");
      assert.equal(r.after, r.baseline, "the process has more open fds than before the Worker");
    });

    test("a terminated Worker closes its listener and the connections accepted ahead of accept()", async () => {
      const r = await scenario("listener", backend);
      assert.equal(r.accepted, 1);
      assert.equal(r.settled, true, "terminate() did not settle");
      assert.equal(r.clientsClosed, true, "a client never saw the end of its connection");
      assert.equal(r.after, r.baseline, "the process has more open fds than before the Worker");
    });

    test("a terminated Worker closes only the fds evloop still owns", async () => {
      const r = await scenario("reuse", backend);
      assert.equal(r.settled, true, "terminate() did not settle");
      assert.equal(r.fds.x, r.fds.closedNumber, "the raw socket did not reuse the closed socket's number (the test needs it)");
      assert.deepEqual(r.open, { closedNumber: true, x: true, y: true, released: true, owned: false, kept: false });
    });
  });
}
