/**
 * Interests, readiness events and the fixed-capacity event buffer of the readiness API.
 */
import { describeValue } from "../sys/args.js";

/**
 * What to be told about: bit flags, combined with `|`.
 *
 * @example
 * ```ts
 * poll.registry.register(fd, 1, Interest.READABLE | Interest.WRITABLE);
 * ```
 */
export const Interest = {
  /** Data (or a connection, or EOF) can be read without blocking. */
  READABLE: 1,
  /** Data can be written without blocking. */
  WRITABLE: 2,
  /** Out-of-band / priority data is waiting (EPOLLPRI, POLLPRI). */
  PRIORITY: 4,
} as const;
/** A combination of {@link Interest} flags. */
export type Interest = number;

/** Readiness bits carried by an {@link Event}; the first three match {@link Interest}. */
export const Ready = {
  READABLE: 1,
  WRITABLE: 2,
  PRIORITY: 4,
  ERROR: 8,
  READ_CLOSED: 16,
  WRITE_CLOSED: 32,
} as const;

/** Which bits of a selector's native event mask mean what (epoll's EPOLL*, poll's POLL*). */
export interface ReadinessBits {
  /** Data, a connection, or the peer's end of stream can be read. */
  readonly readable: number;
  readonly writable: number;
  readonly priority: number;
  readonly error: number;
  /** The connection is gone both ways. */
  readonly hangup: number;
  /** The peer will send no more (EPOLLRDHUP, POLLRDHUP; POLLHUP where there is none). */
  readonly readClosed: number;
}

/**
 * Translates a selector's native event mask into {@link Ready} bits. Errors and hang-ups wake
 * readers and writers alike: the next syscall reports what happened.
 */
export function readinessFrom(mask: number, bits: ReadinessBits): number {
  let r = 0;
  if (mask & (bits.readable | bits.error | bits.hangup | bits.readClosed)) r |= Ready.READABLE;
  if (mask & (bits.writable | bits.error | bits.hangup)) r |= Ready.WRITABLE;
  if (mask & bits.priority) r |= Ready.PRIORITY;
  if (mask & bits.error) r |= Ready.ERROR;
  if (mask & (bits.readClosed | bits.hangup)) r |= Ready.READ_CLOSED;
  if (mask & bits.hangup) r |= Ready.WRITE_CLOSED;
  return r;
}

/**
 * One readiness event: which registration (token) and what it is ready for.
 *
 * @example
 * ```ts
 * for (const event of events) if (event.token === 1 && event.isReadable) drain(fd);
 * ```
 */
export class Event {
  /** The token given at registration. */
  token = 0;
  /** A combination of {@link Ready} bits. */
  readiness = 0;

  /** Reading will not block (data, a connection, EOF or an error is there). */
  get isReadable(): boolean {
    return (this.readiness & Ready.READABLE) !== 0;
  }
  /** Writing will not block. */
  get isWritable(): boolean {
    return (this.readiness & Ready.WRITABLE) !== 0;
  }
  /** Priority data is waiting. */
  get isPriority(): boolean {
    return (this.readiness & Ready.PRIORITY) !== 0;
  }
  /** The fd has a pending error (read it with the operation that fails, or SO_ERROR). */
  get isError(): boolean {
    return (this.readiness & Ready.ERROR) !== 0;
  }
  /** The peer will send no more data (EPOLLRDHUP/POLLHUP). */
  get isReadClosed(): boolean {
    return (this.readiness & Ready.READ_CLOSED) !== 0;
  }
  /** Writing can no longer succeed (EPOLLHUP/POLLHUP). */
  get isWriteClosed(): boolean {
    return (this.readiness & Ready.WRITE_CLOSED) !== 0;
  }
}

/**
 * A reusable buffer of events with a fixed capacity, filled by `Poll.poll()`.
 *
 * @example
 * ```ts
 * const events = new Events(256);
 * poll.poll(events, 100);
 * for (const event of events) console.log(event.token, event.isReadable);
 * ```
 */
export class Events implements Iterable<Event> {
  readonly capacity: number;
  #items: Event[];
  #length = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new RangeError(`Events capacity must be an integer from 1 to ${1 << 20}, got ${describeValue(capacity)}`);
    }
    this.capacity = capacity;
    this.#items = Array.from({ length: capacity }, () => new Event());
  }

  /** Number of events from the last poll. */
  get length(): number {
    return this.#length;
  }

  /** Whether the last poll returned no event. */
  get isEmpty(): boolean {
    return this.#length === 0;
  }

  /** Event `i` of the last poll. */
  get(i: number): Event {
    if (i < 0 || i >= this.#length) throw new RangeError(`event index ${i} is out of range (length ${this.#length})`);
    return this.#items[i]!;
  }

  /** Empties the buffer (the backends call this before filling it). */
  clear(): void {
    this.#length = 0;
  }

  /** Appends an event; returns false when full. Used by selector backends. */
  push(token: number, readiness: number): boolean {
    if (this.#length === this.capacity) return false;
    const e = this.#items[this.#length++]!;
    e.token = token;
    e.readiness = readiness;
    return true;
  }

  *[Symbol.iterator](): Iterator<Event> {
    for (let i = 0; i < this.#length; i++) yield this.#items[i]!;
  }
}
