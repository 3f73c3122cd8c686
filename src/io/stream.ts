/**
 * The shared base of byte-stream handles (TcpStream, UnixStream, FileDescriptor): read, write,
 * writeAll, shutdown, close, async iteration of chunks and `await using`.
 *
 * Every operation passes `{ signal, timeout }` straight to the loop, so cancellation keeps the
 * loop's guarantee: once a promise rejects, the buffer is no longer used.
 */
import type { BorrowedBytes, BorrowOptions, EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkBuffer, checkOptions } from "../loop/checks.js";
import { clock } from "../loop/timers.js";
import { SystemError, TimeoutError } from "../sys/errors.js";
import { shutdown } from "../sys/socket.js";
import { C } from "../sys/target.js";
import { Handle } from "./handle.js";
import { describeValue } from "../sys/args.js";

/**
 * Options for {@link Stream.chunks}.
 *
 * @example
 * ```ts
 * for await (const chunk of stream.chunks({ size: 4096, timeout: 10_000 })) handle(chunk);
 * ```
 */
export interface ChunkOptions extends OperationOptions {
  /** The largest chunk to read at once, in bytes; default 64 KiB. `timeout` applies per read. */
  size?: number | undefined;
}

const DEFAULT_CHUNK = 64 * 1024;

/**
 * A bidirectional byte stream over one fd.
 *
 * @example
 * ```ts
 * import { TcpStream } from "evloop";
 * await using s = await TcpStream.connect({ host: "example.com", port: 80 });
 * await s.writeAll(new TextEncoder().encode("HEAD / HTTP/1.0\r\n\r\n"));
 * for await (const chunk of s) process.stdout.write(chunk);
 * ```
 */
export abstract class Stream extends Handle implements AsyncIterable<Uint8Array> {
  /** writeAll calls running or waiting for their turn. */
  #writers = 0;
  /** Resumers of the writeAll calls waiting for their turn, in order. */
  readonly #waiting: Array<() => void> = [];

  /**
   * Reads at least one byte into `buf` and resolves with the count; 0 means end of stream.
   *
   * @example
   * ```ts
   * const buf = new Uint8Array(4096);
   * const n = await stream.read(buf, { timeout: 5000 });
   * if (n === 0) console.log("peer closed");
   * ```
   */
  read(buf: Uint8Array, options?: OperationOptions): Promise<number> {
    if (this.closed) return this.rejectClosed("read");
    try {
      return this.loop.read(this.fd, buf, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads at least one byte into memory the loop lends (see {@link EventLoop.readBorrowed}): no
   * buffer of the caller's, none held while waiting, and on io_uring no copy. `bytes` is empty
   * at end of stream; call `release()` when done with it (it is reused afterwards).
   *
   * @example
   * ```ts
   * for (;;) {
   *   const chunk = await stream.readBorrowed({ maxBytes: 16384 });
   *   try {
   *     if (chunk.bytes.byteLength === 0) break;
   *     await stream.writeAll(chunk.bytes); // echo
   *   } finally {
   *     chunk.release();
   *   }
   * }
   * ```
   */
  readBorrowed(options?: BorrowOptions): Promise<BorrowedBytes> {
    if (this.closed) return this.rejectClosed("read");
    try {
      return this.loop.readBorrowed(this.fd, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Writes at least one byte of `buf` and resolves with the count, which may be less than
   * `buf.length`; use {@link writeAll} to write everything.
   *
   * @example
   * ```ts
   * const n = await stream.write(new TextEncoder().encode("hello"));
   * ```
   */
  write(buf: Uint8Array, options?: OperationOptions): Promise<number> {
    if (this.closed) return this.rejectClosed("write");
    try {
      return this.loop.write(this.fd, buf, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Writes all of `buf`. The kernel accepts only what fits in its socket or pipe buffer, so one
   * write(2) may take part of `buf`; this loops until every byte is written. `timeout` and
   * `signal` cover the whole call, not each write. Concurrent `writeAll` calls on one stream
   * are written one after the other, never interleaved. On rejection, an unknown prefix of
   * `buf` may already have been written.
   *
   * @example
   * ```ts
   * await stream.writeAll(new Uint8Array(1 << 20), { timeout: 10_000 });
   * ```
   */
  async writeAll(buf: Uint8Array, options?: OperationOptions): Promise<void> {
    checkBuffer(buf, "writeAll", true);
    checkOptions(options);
    this.openFd("write");
    const timeout = options?.timeout;
    const signal = options?.signal;
    const deadline = timeout === undefined ? undefined : clock() + timeout;
    // The turn passes from a finishing writer straight to the next in line; one that gives up
    // while waiting leaves the line and never hands a turn on, so nobody overtakes the writer
    // still running ahead of it.
    if (this.#writers++ > 0) {
      try {
        await this.#waitTurn(signal, deadline, timeout);
      } catch (e) {
        this.#writers--;
        throw e;
      }
    }
    try {
      for (let at = 0; at < buf.byteLength; ) {
        // The timeout and the signal cover the whole call, whatever each write does: checked
        // here too, so no sequence of writes that each finish at once can outlive them.
        if (signal?.aborted) throw signal.reason;
        if (deadline !== undefined && clock() >= deadline && at > 0) throw new TimeoutError("write", timeout!);
        // close() may have run while the previous write was in flight.
        const fd = this.openFd("write");
        const chunk = at === 0 ? buf : buf.subarray(at);
        try {
          at +=
            signal === undefined && deadline === undefined
              ? await this.loop.write(fd, chunk)
              : await this.loop.write(fd, chunk, { signal, timeout: deadline === undefined ? undefined : Math.max(0, deadline - clock()) });
        } catch (e) {
          // Report the caller's timeout, not what was left of it for the last write.
          throw e instanceof TimeoutError && timeout !== undefined ? new TimeoutError("write", timeout) : e;
        }
      }
    } finally {
      this.#writers--;
      this.#waiting.shift()?.();
    }
  }

  /** Whether a `writeAll` is running or waiting for its turn (between its writes, too). */
  protected get writing(): boolean {
    return this.#writers > 0;
  }

  /** Waits until the writers ahead are done; rejects on abort or timeout (leaving the line). */
  async #waitTurn(signal: AbortSignal | undefined, deadline: number | undefined, timeout: number | undefined): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    let resume!: () => void;
    const turn = new Promise<void>((resolve) => (resume = resolve));
    this.#waiting.push(resume);
    const leave = (): void => {
      const i = this.#waiting.indexOf(resume);
      if (i >= 0) this.#waiting.splice(i, 1);
      // The turn came in the same instant as the abort or timeout: hand it on.
      else this.#waiting.shift()?.();
    };
    if (signal === undefined && deadline === undefined) return turn;
    const racers: Promise<void>[] = [turn];
    let onAbort: (() => void) | undefined;
    if (signal) {
      racers.push(
        new Promise<void>((_, reject) => {
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }),
      );
    }
    const stopTimer = new AbortController();
    if (deadline !== undefined) {
      const left = Math.max(0, deadline - clock());
      racers.push(
        this.loop.sleep(left, { signal: stopTimer.signal }).then(() => {
          throw new TimeoutError("write", timeout!);
        }),
      );
    }
    try {
      await Promise.race(racers);
    } catch (e) {
      leave();
      throw e;
    } finally {
      if (onAbort) signal!.removeEventListener("abort", onAbort);
      // Cancels the timer. Promise.race subscribed to every racer, so the cancelled sleep's
      // rejection is handled and never reported as unhandled.
      stopTimer.abort();
    }
  }

  /**
   * Stops writing: sockets send FIN (shutdown(SHUT_WR)) and can still read; any other fd (a
   * pipe's write end) is closed, since closing is the only way to signal end of stream there.
   * ENOTCONN (the peer already reset the connection) is ignored: nothing more can be written
   * either way.
   *
   * @example
   * ```ts
   * await stream.writeAll(request);
   * await stream.shutdown();
   * for await (const chunk of stream) consume(chunk);
   * ```
   */
  async shutdown(): Promise<void> {
    const fd = this.openFd("shutdown");
    try {
      shutdown(fd, C.SHUT_WR);
    } catch (e) {
      if (e instanceof SystemError && e.code === "ENOTSOCK") return this.close();
      if (e instanceof SystemError && e.code === "ENOTCONN") return;
      throw e;
    }
  }

  /**
   * Reads the stream chunk by chunk until end of stream. Each chunk is a fresh copy, so it stays
   * valid after the next read. The iteration also ends (without error) when the stream is
   * closed while it waits. Breaking out of the loop leaves the stream open.
   *
   * @example
   * ```ts
   * for await (const chunk of stream.chunks({ size: 16384, timeout: 30_000 })) handle(chunk);
   * ```
   */
  async *chunks(options?: ChunkOptions): AsyncGenerator<Uint8Array, void, undefined> {
    const size = options?.size ?? DEFAULT_CHUNK;
    if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 0x7fffffff) {
      throw new RangeError(`chunk size must be a positive integer, got ${describeValue(size)}`);
    }
    const readOptions: OperationOptions | undefined = options && { signal: options.signal, timeout: options.timeout };
    const buf = new Uint8Array(size);
    for (;;) {
      let n: number;
      try {
        n = await this.read(buf, readOptions);
      } catch (e) {
        if (this.closed && e instanceof SystemError && e.code === "EBADF") return;
        throw e;
      }
      if (n === 0) return;
      yield buf.slice(0, n);
    }
  }

  /** `for await (const chunk of stream)`: {@link chunks} with 64 KiB reads. */
  [Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    return this.chunks();
  }
}
