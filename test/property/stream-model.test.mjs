/**
 * Random sequences of writes, reads, aborts, timeouts and closes on a UnixStream pair, checked
 * against a model (fast-check's model-based testing), on every backend and driver mode.
 *
 * One end writes, the other reads. The model is the byte queue between them (what was written
 * and not yet read) and the one read that may be waiting. It says what each operation must do,
 * as src/loop/event-loop.ts promises:
 * - a read resolves with at least one byte, the next ones in order (a prefix of the queue), and
 *   a read with nothing to take waits until a write gives it some;
 * - a read whose signal is already aborted rejects with the signal's reason; one aborted or
 *   timed out while it waits rejects with the reason or a TimeoutError, and takes nothing;
 *   one aborted or timed out when data was there may have completed first (then it took bytes,
 *   which the model accounts for), but it never both rejects and takes bytes;
 * - close() rejects the waiting read with a ClosedError, and later reads with EBADF;
 * - at the end the writer closes and the reader reads to end of stream: what arrives is exactly
 *   the queue, so no byte was lost, duplicated or reordered by any aborted or timed-out read.
 *
 * On the blocking backend an operation holds the thread until it completes, so the commands that
 * would wait for data that never comes (a read with nothing queued, without a timeout) are not
 * generated there; the rest of the model is the same.
 *
 * Every wait is bounded (`within`), so a read that hangs fails its run quickly and shrinks to a
 * short sequence, printed one command per step.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

// Failure reports carry the failing assertion's message, not only the counterexample.
fc.configureGlobal({ includeErrorInReport: true });
import { ClosedError, SystemError, TimeoutError, UnixStream } from "evloop";
import { forEachLoop, track } from "../helpers.mjs";

/** Sequences per backend and mode, and commands per sequence: together a few seconds per file. */
const RUNS = 25;
const MAX_COMMANDS = 14;
/** Bound on any single wait for something the model says must happen, in ms. */
const BOUND = 5000;

const hex = (bytes) => Buffer.from(bytes).toString("hex");

/** The abort reason the commands use: an AbortError, as AbortController gives. */
const abortReason = () => new DOMException("aborted by the test", "AbortError");

forEachLoop("stream model", (ctx) => {
  /** Resolves with `promise`'s outcome as `{ ok, value | error }`, failing if it takes over BOUND ms. */
  async function settle(promise, what) {
    const stop = new AbortController();
    const outcome = promise.then(
      (value) => ({ ok: true, value }),
      (error) => ({ ok: false, error }),
    );
    const timer = ctx.loop.sleep(BOUND, { signal: stop.signal }).then(
      () => ({ hung: true }),
      () => ({ hung: false }),
    );
    try {
      const r = await Promise.race([outcome, timer]);
      if (r.hung) assert.fail(`${what} did not settle within ${BOUND} ms`);
      return r;
    } finally {
      stop.abort();
    }
  }

  /**
   * Checks a read that resolved with `n` bytes into `buf` against the model and takes them from
   * its queue.
   */
  function took(model, buf, n, what) {
    assert.ok(Number.isInteger(n) && n >= 1 && n <= buf.length, `${what} resolved with ${n} for a ${buf.length}-byte buffer`);
    assert.ok(n <= model.queue.length, `${what} read ${n} bytes, but only ${model.queue.length} were written and not yet read`);
    assert.equal(hex(buf.subarray(0, n)), hex(model.queue.slice(0, n)), `${what} did not get the next bytes in order`);
    model.queue.splice(0, n);
  }

  /** Lets the loop run a few iterations, so a read that waits is parked or in the kernel. */
  async function spin(turns) {
    for (let i = 0; i < turns; i++) await ctx.loop.sleep(0);
  }

  /** The waiting read, once a write gives it data: it must resolve with the next bytes. */
  async function completePending(model, real) {
    const { promise, buf } = real.pending;
    const r = await settle(promise, "the waiting read");
    assert.ok(r.ok, `the waiting read rejected with ${r.error?.name}: ${r.error?.message}`);
    took(model, buf, r.value, "the waiting read");
    model.pending = null;
    real.pending = null;
  }

  class Write {
    constructor(chunk) {
      this.chunk = chunk;
    }
    check(model) {
      return !model.closed;
    }
    async run(model, real) {
      const r = await settle(real.writer.writeAll(this.chunk), "writeAll");
      assert.ok(r.ok, `writeAll rejected: ${r.error?.message}`);
      model.queue.push(...this.chunk);
      if (model.pending) await completePending(model, real);
    }
    toString() {
      return `write(${hex(this.chunk)})`;
    }
  }

  /** A read without timeout: completes from the queue, or waits (not on the blocking backend). */
  class Read {
    constructor(size, abortable) {
      this.size = size;
      this.abortable = abortable;
    }
    check(model) {
      return !model.closed && model.pending === null && (model.queue.length > 0 || !ctx.blocking);
    }
    async run(model, real) {
      const buf = new Uint8Array(this.size);
      const controller = this.abortable ? new AbortController() : null;
      const promise = real.reader.read(buf, controller ? { signal: controller.signal } : undefined);
      if (model.queue.length > 0) {
        const r = await settle(promise, "read");
        assert.ok(r.ok, `a read with ${model.queue.length} bytes queued rejected: ${r.error?.message}`);
        took(model, buf, r.value, "read");
        return;
      }
      const t = track(promise);
      await spin(2);
      assert.equal(t.state, "pending", "a read with nothing written did not wait");
      model.pending = { abortable: this.abortable };
      real.pending = { promise, buf, controller };
    }
    toString() {
      return `read(${this.size}${this.abortable ? ", abortable" : ""})`;
    }
  }

  /** Aborts the waiting read: it rejects with the reason and takes nothing. */
  class AbortWaiting {
    check(model) {
      return model.pending?.abortable === true;
    }
    async run(model, real) {
      const reason = abortReason();
      real.pending.controller.abort(reason);
      const r = await settle(real.pending.promise, "the aborted waiting read");
      assert.ok(!r.ok, `the aborted waiting read resolved with ${r.value}`);
      assert.equal(r.error, reason, `rejected with ${r.error?.name}: ${r.error?.message}, not the abort reason`);
      model.pending = null;
      real.pending = null;
    }
    toString() {
      return "abort the waiting read";
    }
  }

  /** A read whose signal is aborted before the call: rejects with the reason, takes nothing. */
  class ReadAbortedBefore {
    constructor(size) {
      this.size = size;
    }
    check(model) {
      return !model.closed;
    }
    async run(model, real) {
      const reason = abortReason();
      const r = await settle(real.reader.read(new Uint8Array(this.size), { signal: AbortSignal.abort(reason) }), "a read aborted before it started");
      assert.ok(!r.ok, `a read aborted before it started resolved with ${r.value}`);
      assert.equal(r.error, reason);
    }
    toString() {
      return `read(${this.size}) with a signal aborted before`;
    }
  }

  /**
   * A read ended early, by an abort after `turns` loop iterations or by a timeout of `ms`: with
   * nothing to read it rejects (reason / TimeoutError) and takes nothing; with data queued it may
   * have completed first. Behind a waiting read, it has nothing to read.
   */
  class ReadEndedEarly {
    constructor(size, how, n) {
      this.size = size;
      this.how = how;
      this.n = n;
    }
    check(model) {
      if (model.closed) return false;
      // On the blocking backend an abort cannot interrupt a read that waits: only a timeout can.
      return !ctx.blocking || model.queue.length > 0 || this.how === "timeout";
    }
    async run(model, real) {
      const buf = new Uint8Array(this.size);
      const nothingToRead = model.queue.length === 0 || model.pending !== null;
      let promise;
      let reason;
      if (this.how === "abort") {
        const controller = new AbortController();
        reason = abortReason();
        promise = real.reader.read(buf, { signal: controller.signal });
        await spin(this.n);
        controller.abort(reason);
      } else {
        promise = real.reader.read(buf, { timeout: this.n });
      }
      const r = await settle(promise, `${this}`);
      if (r.ok) {
        assert.ok(!nothingToRead, `${this} resolved with ${r.value} with nothing to read`);
        took(model, buf, r.value, `${this}`);
        return;
      }
      if (this.how === "abort") assert.equal(r.error, reason, `${this} rejected with ${r.error?.name}: ${r.error?.message}`);
      else assert.ok(r.error instanceof TimeoutError && r.error.code === "ETIMEDOUT", `${this} rejected with ${r.error?.name}: ${r.error?.message}`);
    }
    toString() {
      return this.how === "abort" ? `read(${this.size}) aborted after ${this.n} turns` : `read(${this.size}) with timeout ${this.n} ms`;
    }
  }

  /** Closes the reader: the waiting read rejects with a ClosedError. */
  class CloseReader {
    check(model) {
      return !model.closed;
    }
    async run(model, real) {
      const pending = real.pending;
      await real.reader.close();
      if (pending) {
        const r = await settle(pending.promise, "the read waiting at close");
        assert.ok(!r.ok, `the read waiting at close resolved with ${r.value}`);
        assert.ok(r.error instanceof ClosedError && r.error.code === "EBADF", `rejected with ${r.error?.name}: ${r.error?.message}`);
      }
      model.closed = true;
      model.pending = null;
      real.pending = null;
    }
    toString() {
      return "close the reader";
    }
  }

  /** A read on the closed reader rejects with EBADF at once. */
  class ReadClosed {
    check(model) {
      return model.closed;
    }
    async run(model, real) {
      const r = await settle(real.reader.read(new Uint8Array(4)), "a read after close");
      assert.ok(!r.ok && r.error instanceof SystemError && r.error.code === "EBADF", `a read after close: ${r.ok ? `resolved ${r.value}` : r.error?.message}`);
    }
    toString() {
      return "read after close";
    }
  }

  const size = fc.integer({ min: 1, max: 16 });
  const commands = [
    fc.uint8Array({ minLength: 1, maxLength: 24 }).map((chunk) => new Write(chunk)),
    fc.tuple(size, fc.boolean()).map(([n, abortable]) => new Read(n, abortable)),
    fc.constant(new AbortWaiting()),
    size.map((n) => new ReadAbortedBefore(n)),
    fc.tuple(size, fc.integer({ min: 0, max: 3 })).map(([n, turns]) => new ReadEndedEarly(n, "abort", turns)),
    fc.tuple(size, fc.integer({ min: 1, max: 4 })).map(([n, ms]) => new ReadEndedEarly(n, "timeout", ms)),
    fc.constant(new CloseReader()),
    fc.constant(new ReadClosed()),
  ];

  /** The end of every sequence: the writer closes; the reader gets exactly the queue, then EOF. */
  async function drain(model, real) {
    await real.writer.close();
    if (model.closed) return;
    const got = [];
    if (real.pending) {
      const r = await settle(real.pending.promise, "the read waiting when the writer closed");
      assert.ok(r.ok, `the read waiting when the writer closed rejected: ${r.error?.message}`);
      got.push(...real.pending.buf.subarray(0, r.value));
    }
    for (;;) {
      const buf = new Uint8Array(64);
      const r = await settle(real.reader.read(buf), "a read while draining");
      assert.ok(r.ok, `a read while draining rejected: ${r.error?.message}`);
      if (r.value === 0) break;
      got.push(...buf.subarray(0, r.value));
      assert.ok(got.length <= model.queue.length, `drained ${got.length} bytes; only ${model.queue.length} were left`);
    }
    assert.equal(hex(got), hex(model.queue), "the bytes left at the end are not exactly those written and not read");
    await real.reader.close();
  }

  test("reads, writes, aborts, timeouts and close agree with the byte-queue model", () =>
    ctx.run(async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: MAX_COMMANDS }), async (cmds) => {
          const [writer, reader] = UnixStream.pair({ loop: ctx.loop });
          const model = { queue: [], pending: null, closed: false };
          const real = { writer, reader, pending: null };
          try {
            await fc.asyncModelRun(() => ({ model, real }), cmds);
            await drain(model, real);
          } finally {
            if (!writer.closed) await writer.close();
            if (!reader.closed) await reader.close();
          }
        }),
        { numRuns: RUNS },
      );
    }));
});
