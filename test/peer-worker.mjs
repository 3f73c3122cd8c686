/**
 * The thread side of `ctx.peer` on the blocking backend (see `Peer` in helpers.mjs): a Worker
 * that runs peer functions one at a time, each on a fresh loop of its own in owner mode, bounded
 * by a watchdog on that loop.
 *
 * It waits for its next task synchronously (Atomics.wait on the message count, then
 * receiveMessageOnPort), as the test body does for its answers: neither side needs the other's
 * event loop, which on the body's side may be blocked in poll(2) for as long as the peer works.
 *
 * `whenWaiting()` resolves once the body's thread (its kernel thread id is `workerData.bodyThread`:
 * the process id on Node's and Bun's main thread, another under `deno test`) sits in poll(2) on
 * one fd, which is where the blocking backend waits. It reads
 * /proc/self/task/<tid>/syscall for the system call the thread is in, and the thread's count of
 * voluntary context switches, so that a second `whenWaiting()` only passes once the thread has
 * gone to sleep again since the first — not while it is still leaving the poll the peer's last
 * action ended.
 */
import { receiveMessageOnPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import * as evloop from "evloop";
import * as helpers from "./helpers.mjs";

const { port, backend, bodyThread: bodyTid } = workerData;
const ctl = new Int32Array(workerData.ctl);

/** How long `whenWaiting()` waits for the body's thread to block, in ms. */
const WAITING_BOUND = 10_000;

/**
 * The numbers of poll(2), ppoll(2) and restart_syscall(2): the last is what /proc shows for a
 * poll resumed after a signal, which is how the body's poll appears here more often than not.
 */
const POLL_SYSCALLS = { x64: [7, 271, 219], arm64: [73, 128] }[process.arch];

function post(message) {
  port.postMessage(message);
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}

/** The next message from the body; waits at most `ms` (without a bound when Infinity). */
function next(ms) {
  const deadline = performance.now() + ms;
  for (;;) {
    const count = Atomics.load(ctl, 0);
    const got = receiveMessageOnPort(port);
    if (got) return got.message;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`the test body sent the peer nothing within ${ms} ms`);
    Atomics.wait(ctl, 0, count, left === Infinity ? undefined : left);
  }
}

/**
 * The body's thread as /proc shows it: whether it is in poll(2) on one fd, and its voluntary
 * context switches. Null where /proc does not tell (then `whenWaiting` can only wait a while).
 */
function bodyThread() {
  if (!POLL_SYSCALLS) return null;
  try {
    const task = `/proc/self/task/${bodyTid}`;
    const switches = Number(/^voluntary_ctxt_switches:\s*(\d+)$/m.exec(readFileSync(`${task}/status`, "utf8"))?.[1]);
    const [nr, , nfds] = readFileSync(`${task}/syscall`, "utf8").trim().split(" ");
    // One fd: the operation's; two: and the host loop's, which owner mode adds (`wakeOn`).
    return { polling: POLL_SYSCALLS.includes(Number(nr)) && (Number(nfds) === 1 || Number(nfds) === 2), switches };
  } catch {
    return null;
  }
}

function errorData(e) {
  return e instanceof Error ? { message: e.message, stack: e.stack, code: e.code } : { message: String(e), stack: "" };
}

async function runTask({ source, args, timeout }) {
  const fn = (0, eval)(`(${source})`);
  const loop = evloop.createLoop({ backend, guest: false });
  let lastSwitches;
  const env = {
    ...helpers,
    evloop,
    loop,
    where: "worker",
    async whenWaiting() {
      const deadline = performance.now() + WAITING_BOUND;
      for (;;) {
        const t = bodyThread();
        if (t === null) {
          await loop.sleep(200);
          return;
        }
        if (t.polling && (lastSwitches === undefined || t.switches > lastSwitches)) {
          lastSwitches = t.switches;
          return;
        }
        if (performance.now() > deadline) throw new Error(`the test body's thread was not seen waiting in poll(2) within ${WAITING_BOUND} ms`);
        await loop.sleep(1);
      }
    },
    send: (value) => post({ type: "message", value }),
    async receive() {
      const m = next(timeout);
      if (m.type !== "message") throw new Error(`the peer expected a message from the body and got ${m.type}`);
      return m.value;
    },
  };
  try {
    const value = await evloop.runMain(() => helpers.withWatchdog(loop, () => fn(env, args), timeout), { loop });
    post({ type: "result", ok: true, value });
  } catch (e) {
    post({ type: "result", ok: false, error: errorData(e) });
  } finally {
    loop.dispose();
  }
}

for (;;) {
  const m = next(Infinity);
  if (m.type === "exit") break;
  // A message left over from a test that failed before the peer took it.
  if (m.type !== "run") continue;
  await runTask(m);
}
port.close();
