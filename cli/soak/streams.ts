/**
 * Byte streams under the soak: the client lanes (TCP over 127.0.0.1 and ::1, Unix stream sockets
 * in the run's temp dir) and the echo handler their servers run.
 *
 * A client lane connects, sends a plan of messages (slices of the corpus, 1 byte to 256 KiB),
 * reads the echo back and compares every byte with what it sent at that position, closes, and
 * connects again until the phase ends (connection churn). Connects, reads and writes are
 * randomly aborted mid-flight or given 1-5 ms timeouts, and the accounting is exactly what the
 * EventLoop contract promises (src/loop/event-loop.ts, src/io/stream.ts):
 *
 * - a `write` that rejects sent none of its bytes; one that resolves with n sent exactly its
 *   first n. So the writer retries from the first unsent byte, and any byte a cancelled write
 *   sent anyway shows up in the echo as a duplicate: a mismatch at a named offset.
 * - `writeAll` may have sent an unknown prefix when it rejects, so it is only used without a
 *   cancellation (bounded by the stuck limit, whose expiry fails the run anyway).
 * - a `read` that rejects consumed nothing and left its buffer untouched: the buffer is filled
 *   with a sentinel first and checked, and a consumed-and-dropped byte shows up as a mismatch.
 * - `close` rejects a pending read with a ClosedError (EBADF): one connection in ten ends that
 *   way, with a read waiting when the stream is closed.
 *
 * On the blocking backend an operation holds the thread until it completes, so there the client
 * goes in lockstep (a message of at most 32 KiB, then its echo) and the servers run in a Worker.
 */
import { setSendBufferSize } from "evloop/internal";
import type { TcpStream, UnixStream, OperationOptions } from "evloop";
import {
  attempt,
  between,
  CANCELLED,
  cancelled,
  CORPUS_SIZE,
  firstDifference,
  logSize,
  retrying,
  SENTINEL,
  SoakFailure,
  STUCK_MS,
  untouched,
  type Cancel,
  type CancelMix,
  type Phase,
  type Rand,
} from "./common.js";

export type SoakStream = TcpStream | UnixStream;

const MAX_MESSAGE = 256 * 1024;
/** Messages in lockstep must fit in the socket buffers, or the echo would wait for our read. */
const MAX_LOCKSTEP_MESSAGE = 32 * 1024;
const MAX_READ = 128 * 1024;
/** SO_SNDBUF of half the connections (doubled by Linux): small, so that writes wait. */
const SMALL_SNDBUF = 16 * 1024;

const CONNECT_MIX: CancelMix = { abort: 0.1, timeout: 0.05 };
const WRITE_MIX: CancelMix = { abort: 0.2, timeout: 0.2 };
const READ_MIX: CancelMix = { abort: 0.2, timeout: 0.2 };
const SERVER_READ_MIX: CancelMix = { abort: 0.1, timeout: 0.1 };

const PLAIN: Cancel = { kind: "plain", options: { timeout: STUCK_MS }, finish: () => {} };

/**
 * What a reader expects next: the plan's messages in order. `check` compares arriving bytes
 * with them and fails the run, naming the offset, on any difference.
 */
export class Expected {
  #message = 0;
  #offset = 0;
  received = 0;
  readonly total: number;

  constructor(
    readonly messages: readonly Uint8Array[],
    readonly where: string,
  ) {
    this.total = messages.reduce((sum, m) => sum + m.length, 0);
  }

  check(phase: Phase, got: Uint8Array): void {
    for (let i = 0; i < got.length; ) {
      const expected = this.messages[this.#message];
      if (expected === undefined) {
        this.#mismatch(phase, `${got.length - i} bytes beyond the ${this.total} sent (duplicated data)`);
      }
      const take = Math.min(got.length - i, expected.length - this.#offset);
      const want = expected.subarray(this.#offset, this.#offset + take);
      const have = got.subarray(i, i + take);
      const k = firstDifference(have, want);
      if (k >= 0) {
        this.#mismatch(phase, `byte ${this.received + i + k} (message ${this.#message}, offset ${this.#offset + k}) is ${have[k]}, expected ${want[k]}: data lost, duplicated or corrupted`);
      }
      i += take;
      this.#offset += take;
      if (this.#offset === expected.length) {
        this.#message++;
        this.#offset = 0;
      }
    }
    this.received += got.length;
    phase.counters.bytesVerified += got.length;
  }

  #mismatch(phase: Phase, what: string): never {
    const message = `checksum: ${this.where}: ${what}`;
    phase.fail(message);
    throw new SoakFailure(message);
  }
}

/** A connection's messages: slices of the corpus, half log-uniform sizes, half uniform. */
function makePlan(phase: Phase, rand: Rand): Uint8Array[] {
  const max = phase.blocking ? MAX_LOCKSTEP_MESSAGE : MAX_MESSAGE;
  const messages: Uint8Array[] = [];
  for (let i = between(rand, 1, 12); i > 0; i--) {
    const size = rand() < 0.5 ? logSize(rand, max) : between(rand, 1, max);
    const offset = between(rand, 0, CORPUS_SIZE - size);
    messages.push(phase.corpus.subarray(offset, offset + size));
  }
  return messages;
}

/** Writes `message` with single, randomly cancelled writes, or now and then one `writeAll`. */
async function writeMessage(phase: Phase, stream: SoakStream, message: Uint8Array, rand: Rand, where: string): Promise<void> {
  if (rand() < 0.3) {
    try {
      await stream.writeAll(message, PLAIN.options);
    } catch (e) {
      if (!cancelled(phase, PLAIN, e, "write", `${where}: writeAll`)) throw e;
    }
    phase.done();
    return;
  }
  for (let at = 0; at < message.length; ) {
    // A cancelled write sent nothing: the next try starts from the same byte.
    const n = await retrying(phase, rand, WRITE_MIX, true, "write", `${where}: write`, (options) => stream.write(message.subarray(at), options));
    if (!Number.isInteger(n) || n < 1 || n > message.length - at) {
      const text = `${where}: a write of ${message.length - at} bytes resolved with ${n}`;
      phase.fail(text);
      throw new SoakFailure(text);
    }
    phase.done();
    at += n;
  }
}

/**
 * One randomly cancelled read (a fifth of them borrowed), checked against `expected`. Resolves
 * with the bytes read (0 at end of stream), or null when the read was cancelled.
 */
async function readOnce(phase: Phase, stream: SoakStream, expected: Expected, buf: Uint8Array, rand: Rand): Promise<number | null> {
  const where = `${expected.where}: read at byte ${expected.received}`;
  // A plain read's buffer (a borrowed read has none): a cancelled read must leave it untouched.
  let view: Uint8Array | undefined;
  const read = async (cancel: Cancel): Promise<number> => {
    if (rand() < 0.2) {
      const chunk = await stream.readBorrowed({ maxBytes: logSize(rand, 65536), ...cancel.options });
      try {
        phase.done();
        expected.check(phase, chunk.bytes);
        return chunk.bytes.byteLength;
      } finally {
        chunk.release();
      }
    }
    view = buf.subarray(0, logSize(rand, MAX_READ));
    if (cancel.kind !== "plain") view.fill(SENTINEL);
    const n = await stream.read(view, cancel.options);
    phase.done();
    expected.check(phase, view.subarray(0, n));
    return n;
  };
  const checkUntouched = (cancel: Cancel): void => {
    if (view !== undefined && !untouched(view)) {
      const text = `${where}: a ${cancel.kind === "abort" ? "aborted" : "timed-out"} read of ${view.length} bytes wrote into its buffer`;
      phase.fail(text);
      throw new SoakFailure(text);
    }
  };
  const n = await attempt(phase, rand, READ_MIX, true, "read", where, read, checkUntouched);
  return n === CANCELLED ? null : n;
}

/** Reads until `expected` has `until` bytes, or to end of stream when `until` is undefined. */
async function readUntil(phase: Phase, stream: SoakStream, expected: Expected, rand: Rand, until?: number): Promise<void> {
  const buf = new Uint8Array(MAX_READ);
  for (;;) {
    if (until !== undefined && expected.received >= until) return;
    if (!phase.blocking && rand() < 0.05) await phase.loop.sleep(between(rand, 1, 10));
    const n = await readOnce(phase, stream, expected, buf, rand);
    if (n !== 0) continue;
    if (until !== undefined || expected.received !== expected.total) {
      const text = `${expected.where}: end of stream after ${expected.received} of ${expected.total} bytes`;
      phase.fail(text);
      throw new SoakFailure(text);
    }
    return;
  }
}

/**
 * Closes `stream` while a read waits on it: the read must reject with a ClosedError (EBADF), as
 * `close` promises, without data (the echo is complete, and the server waits for more).
 */
async function closeWhileReading(phase: Phase, stream: SoakStream, rand: Rand, where: string): Promise<void> {
  const pending = stream.read(new Uint8Array(1024), { timeout: STUCK_MS });
  await phase.loop.sleep(between(rand, 0, 2));
  await phase.close(stream);
  try {
    const n = await pending;
    const text = `${where}: a read pending at close resolved with ${n} instead of rejecting`;
    phase.fail(text);
    throw new SoakFailure(text);
  } catch (e) {
    if (e instanceof SoakFailure) throw e;
    if ((e as { code?: unknown }).code !== "EBADF") throw e;
    phase.count(e);
  }
}

/** One connection's conversation: the plan written, its echo read and checked, the close. */
async function converse(phase: Phase, stream: SoakStream, rand: Rand, where: string): Promise<void> {
  const messages = makePlan(phase, rand);
  const expected = new Expected(messages, where);
  if (phase.blocking) {
    for (const [i, message] of messages.entries()) {
      await phase.breathe();
      await writeMessage(phase, stream, message, rand, `${where}, message ${i}`);
      await readUntil(phase, stream, expected, rand, expected.received + message.length);
    }
    await stream.shutdown();
    await readUntil(phase, stream, expected, rand);
    return;
  }
  if (rand() < 0.5) setSendBufferSize(stream.fd, SMALL_SNDBUF);
  const closeEarly = rand() < 0.1;
  const writer = async (): Promise<void> => {
    for (const [i, message] of messages.entries()) await writeMessage(phase, stream, message, rand, `${where}, message ${i}`);
    if (!closeEarly) await stream.shutdown();
  };
  await Promise.all([writer(), readUntil(phase, stream, expected, rand, closeEarly ? expected.total : undefined)]);
  if (closeEarly) await closeWhileReading(phase, stream, rand, where);
}

/** Connects with a random cancellation; null when it was cancelled. */
async function connectOnce(phase: Phase, connect: (options: OperationOptions) => Promise<SoakStream>, rand: Rand, where: string): Promise<SoakStream | null> {
  const stream = await attempt(phase, rand, CONNECT_MIX, true, "connect", `${where}: connect`, async (cancel) => {
    const stream = await connect(cancel.options);
    phase.done();
    return phase.track(stream);
  });
  return stream === CANCELLED ? null : stream;
}

/**
 * A client lane: connection after connection to one server until the phase ends. Throws on the
 * first failure (already recorded) or unexpected error.
 */
export async function streamLane(phase: Phase, name: string, rand: Rand, connect: (options: OperationOptions) => Promise<SoakStream>): Promise<void> {
  for (let i = 0; !phase.stopping; i++) {
    const where = `${name} connection ${i}`;
    phase.doing.set(name, `${where}: connecting`);
    const stream = await connectOnce(phase, connect, rand, where);
    if (stream === null) continue;
    try {
      phase.doing.set(name, `${where}: transferring`);
      await converse(phase, stream, rand, where);
      phase.counters.connections++;
    } finally {
      await phase.close(stream);
    }
  }
  phase.doing.delete(name);
}

/** Whether `e` is what a server may see when a client went away abruptly. */
const peerGone = (e: unknown): boolean => ["ECONNRESET", "EPIPE"].includes(String((e as { code?: unknown }).code));

/**
 * The echo handler of one accepted connection: reads with random sizes (some aborted or timed
 * out, which must leave the buffer untouched), writes back, shuts down at end of stream.
 */
export async function echoStream(phase: Phase, conn: SoakStream, rand: Rand, where: string): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      if (rand() < 0.03) await phase.loop.sleep(between(rand, 2, 15));
      const view = buf.subarray(0, logSize(rand, buf.length));
      const read = (cancel: Cancel): Promise<number> => {
        if (cancel.kind !== "plain") view.fill(SENTINEL);
        return conn.read(view, cancel.options);
      };
      const checkUntouched = (cancel: Cancel): void => {
        if (!untouched(view)) {
          const text = `${where}: an echo read that rejected (${cancel.kind}) wrote into its buffer`;
          phase.fail(text);
          throw new SoakFailure(text);
        }
      };
      const n = await attempt(phase, rand, SERVER_READ_MIX, false, "read", `${where}: echo read`, read, checkUntouched);
      if (n === CANCELLED) continue;
      phase.done();
      if (n === 0) break;
      await conn.writeAll(view.subarray(0, n));
      phase.done();
    }
    await conn.shutdown();
  } catch (e) {
    if (e instanceof SoakFailure) return;
    // A client that failed closes with data unread (RST); a handle closed by force at an
    // overrun rejects with EBADF.
    if (peerGone(e) || (phase.stopping && (e as { code?: unknown }).code === "EBADF")) phase.count(e);
    else phase.unexpected(e, `${where}: echo`);
  } finally {
    await phase.close(conn);
  }
}
