/**
 * What the fault suite shares: a plan that is always restored, the fds a test must leave as it
 * found them, and a connected TCP pair. Faults come from `injectFaults` (evloop/internal); see
 * src/sys/faults.ts for what each one means and how it reaches every backend.
 */
import assert from "node:assert/strict";
import { SystemError, TcpStream } from "evloop";
import { injectFaults } from "evloop/internal";
import { readdirSync, readlinkSync } from "node:fs";

export const HOST = "127.0.0.1";

/** Runs `body(plan)` with the fault plan `specs` active, restoring it however `body` ends. */
export async function withFaults(specs, body) {
  const plan = injectFaults(specs);
  try {
    return await body(plan);
  } finally {
    plan.restore();
  }
}

/**
 * Records the process's open fds now; `check()` asserts they are the same again: every fd the
 * test opened was closed, and no fd it did not own was closed. With `socketsOnly` only sockets
 * count: on the blocking backend the peers run in Worker threads, whose own Node event loops
 * open and close eventfds, epoll fds and pipes as they please.
 */
export function fdBaseline(socketsOnly = false) {
  const before = openFds(socketsOnly);
  return {
    check(what = "the test") {
      const after = openFds(socketsOnly);
      const gone = [...before].filter(([fd, target]) => after.get(fd) !== target);
      const added = [...after].filter(([fd, target]) => before.get(fd) !== target);
      assert.deepEqual({ gone, added }, { gone: [], added: [] }, `${what} left fds open, or closed fds it did not own`);
    },
  };
}

/** This process's open fds and what each refers to (from /proc/self/fd). */
function openFds(socketsOnly) {
  const out = new Map();
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${name}`);
      if (!socketsOnly || target.startsWith("socket:")) out.set(Number(name), target);
    } catch {
      // The fd readdir itself used, already closed.
    }
  }
  return out;
}

/** Asserts that `promise` rejects with a SystemError of `code` (and `syscall`, when given). */
export async function rejectsWith(promise, code, syscall) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof SystemError, `expected a SystemError ${code}, got ${e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (syscall !== undefined) assert.equal(e.syscall, syscall);
    return true;
  });
}

/** A connected TCP pair through `listener`: [client, server]. */
export function tcpPair(ctx, listener) {
  return ctx.both(
    () => TcpStream.connect({ host: HOST, port: listener.address.port, timeout: 5000, loop: ctx.loop }),
    () => listener.accept({ timeout: 5000 }),
  );
}
