/**
 * The reactor thread (a Worker started by `reactor.ts`): owns the selector, blocks in it with no
 * timeout, and copies each ready event into the event ring for the owning thread.
 *
 * It repeats: apply the registration table if its version moved (`table` mode); select; for each
 * event, drain the waker if it is the waker's, else push it to the ring (waiting while the ring is
 * full: `ring.ts`); publish the batch. It stops when `ctl[STATE]` leaves OPEN (`close()`, or the
 * process exiting), which the owner follows with a wake-up. Before closing the selector it waits
 * until no Registrator call is in progress (`ctl[USERS]` = 0): a Registrator checks the state
 * after counting itself in, so none can reach the selector's fd after it is closed (and its
 * number possibly reused).
 *
 * The selector also watches this Worker's own libuv loop (`hostBackendFd`, as owner mode does):
 * Node wakes that loop to terminate the Worker, also when it terminates the Worker that started
 * the reactor, and a thread blocked in the kernel could not be terminated otherwise. When it
 * fires, the thread lets libuv run (one `setImmediate`), where a pending termination takes
 * effect, and re-arms it. The fds the thread owns (the selector's, the waker's) have native
 * cleanup hooks (`driver/cleanup.ts`), so a terminated reactor thread leaves none open.
 *
 * A `table`-mode change the selector refuses here (the fd was closed meanwhile: EBADF) is
 * reported as an event with `isError` for its token, since the Registrator that made it has
 * returned already.
 */
import { parentPort, workerData } from "node:worker_threads";
import { closeAtExit, keepAtExit } from "../driver/cleanup.js";
import { hostBackendFd } from "../driver/libuv.js";
import { Events, Interest, Ready } from "../selector/event.js";
import { createSelector } from "../selector/registry.js";
import type { Selector, SelectorWaker } from "../selector/selector.js";
import { SystemError } from "../sys/errors.js";
import { openWakeup, wakeupFds, type WakeupFd } from "../sys/wakeup.js";
import { RingProducer } from "./ring.js";
import { CTL, STATE, WAKE_TOKEN, type ReactorData, type ReactorHello } from "./shared.js";
import { readTable, type TableEntry } from "./table.js";

/** The token of this Worker's own libuv loop fd. */
const HOST_TOKEN = WAKE_TOKEN + 1;

/** The most events one select returns; more wait in the kernel for the next. */
const MAX_BATCH = 1024;

const data = workerData as ReactorData;
const ctl = new Int32Array(data.ctl);
const port = parentPort!;

/** The selector and its waker: the selector's own (kqueue's EVFILT_USER) or a wake-up fd. */
function open(): { selector: Selector; own: SelectorWaker | null; wakeup: WakeupFd | null } {
  const selector = createSelector(data.selector);
  try {
    const own = selector.waker?.(WAKE_TOKEN) ?? null;
    if (own !== null) return { selector, own, wakeup: null };
    const wakeup = openWakeup();
    try {
      selector.register(wakeup.fd, WAKE_TOKEN, Interest.READABLE);
    } catch (e) {
      wakeup.close();
      throw e;
    }
    return { selector, own: null, wakeup };
  } catch (e) {
    selector.close();
    throw e;
  }
}

type Opened = ReturnType<typeof open>;

/** The fds the thread owns: the selector's and the waker's. */
function ownedFds({ selector, wakeup }: Opened): number[] {
  return [...(wakeup !== null ? wakeupFds(wakeup) : []), selector.ownFd ?? selector.fd].filter((fd) => fd >= 0);
}

/** Opens the selector and says so; on failure says why and returns null (the thread then ends). */
function start(): Opened | null {
  try {
    const opened = open();
    // Before anyone hears of the reactor: from then on it may be terminated with its owner.
    for (const fd of ownedFds(opened)) closeAtExit(fd);
    const waker = opened.own?.handle ?? opened.wakeup!.handle;
    port.postMessage({ ok: true, selectorFd: data.mode === "direct" ? opened.selector.fd : -1, waker } satisfies ReactorHello);
    return opened;
  } catch (e) {
    const hello: ReactorHello =
      e instanceof SystemError
        ? { ok: false, message: e.message, errno: e.errno, syscall: e.syscall }
        : { ok: false, message: e instanceof Error ? e.message : String(e), errno: 0, syscall: "" };
    port.postMessage(hello);
    return null;
  }
}

async function run({ selector, own, wakeup }: Opened): Promise<void> {
  const owned = ownedFds({ selector, own, wakeup });
  const host = hostBackendFd();
  if (host >= 0) selector.register(host, HOST_TOKEN, Interest.READABLE);
  const wakeOwner =
    data.wake === "atomics"
      ? () => {
          Atomics.notify(ctl, CTL.TAIL);
        }
      : () => data.port!.postMessage(null);
  const ring = new RingProducer(ctl, data.ring, data.capacity, wakeOwner);

  /** What the selector holds in `table` mode, by fd, as last applied. */
  const applied = new Map<number, TableEntry>();
  let version = 0;

  function isNotRegistered(e: unknown): boolean {
    return e instanceof SystemError && e.code === "ENOENT";
  }

  /** Applies one table entry that is new or changed; a refusal becomes an error event. */
  function apply(entry: TableEntry, before: TableEntry | undefined): void {
    applied.set(entry.fd, entry);
    try {
      if (before !== undefined && before.registered === entry.registered) {
        try {
          selector.reregister(entry.fd, entry.token, entry.interest);
        } catch (e) {
          // The selector forgot the fd (poll(2)'s POLLNVAL, a closed fd's knotes): start again.
          if (!isNotRegistered(e)) throw e;
          selector.register(entry.fd, entry.token, entry.interest);
        }
      } else {
        if (before !== undefined) unregister(entry.fd);
        selector.register(entry.fd, entry.token, entry.interest);
      }
    } catch {
      // Remembered all the same: a later change retries it, a deregister forgets it.
      ring.push(entry.token, Ready.ERROR | Ready.READABLE | Ready.WRITABLE);
    }
  }

  function forget(fd: number): void {
    applied.delete(fd);
    unregister(fd);
  }

  function unregister(fd: number): void {
    try {
      selector.deregister(fd);
    } catch {
      // Already gone from the selector (closed, or refused when it was registered).
    }
  }

  /** Brings the selector in line with the registration table. */
  function sync(): void {
    if (data.table === null || Atomics.load(ctl, CTL.VERSION) === version) return;
    version = Atomics.load(ctl, CTL.VERSION);
    const entries = readTable(ctl, data.table);
    const present = new Set<number>();
    for (const entry of entries) {
      present.add(entry.fd);
      const before = applied.get(entry.fd);
      if (before === undefined || before.changed !== entry.changed) apply(entry, before);
    }
    for (const fd of applied.keys()) if (!present.has(fd)) forget(fd);
    ring.publish();
  }

  const events = new Events(Math.min(data.capacity, MAX_BATCH));
  run: while (Atomics.load(ctl, CTL.STATE) === STATE.OPEN) {
    sync();
    selector.select(events, -1);
    let hostFired = false;
    for (const event of events) {
      if (event.token === HOST_TOKEN) {
        hostFired = true;
        continue;
      }
      if (event.token === WAKE_TOKEN) {
        if (wakeup !== null) {
          wakeup.drain();
          // poll(2) disarms a direction that fired: arm the waker again.
          selector.reregister(wakeup.fd, WAKE_TOKEN, Interest.READABLE);
        }
        continue;
      }
      if (!ring.push(event.token, event.readiness)) break run;
    }
    ring.publish();
    if (hostFired) {
      // libuv's turn: it handles what made its fd readable (a termination takes effect here).
      await new Promise((resolve) => setImmediate(resolve));
      selector.reregister(host, HOST_TOKEN, Interest.READABLE);
    }
  }

  // Registrators count themselves in before they check the state: wait for those in progress.
  for (let users = Atomics.load(ctl, CTL.USERS); users !== 0; users = Atomics.load(ctl, CTL.USERS)) {
    Atomics.wait(ctl, CTL.USERS, users, 10);
  }
  for (const fd of owned) keepAtExit(fd);
  if (host >= 0) selector.deregister(host);
  if (wakeup !== null) {
    selector.deregister(wakeup.fd);
    wakeup.close();
  }
  own?.close();
  selector.close();
}

const opened = start();
if (opened !== null) await run(opened);
