/**
 * The timer heap every event loop backend shares: a binary min-heap ordered by (deadline,
 * insertion sequence), so timers with equal deadlines fire in the order they were added.
 *
 * Each timer records its own position in the heap, so cancel() needs no search and can tell a
 * timer that already fired or was cancelled (index -1) from a scheduled one. A timer is the only
 * allocation; sifting moves a hole instead of swapping, and no operation creates closures.
 *
 * Not thread safe: a heap belongs to one loop, and all its methods run on that loop's thread.
 */

/** The loops' monotonic clock, in ms: every deadline is on it. */
export const clock = (): number => performance.now();

/** A scheduled timer. Fields are read by the loop; treat as opaque elsewhere. */
export interface Timer {
  /** Milliseconds on the monotonic clock the loop passes to {@link TimerHeap.runDue} as `now`. */
  deadline: number;
  callback: () => void;
  /**
   * Position in the heap, or, for a due timer added by a callback while runDue() runs, in the
   * list of timers held back until it returns; -1 when not scheduled.
   */
  index: number;
  /** Whether the timer keeps the process alive; see {@link TimerHeap.refCount}. */
  ref: boolean;
}

class Entry implements Timer {
  deadline: number;
  callback: () => void;
  index = -1;
  ref: boolean;
  /** Insertion order; breaks ties between equal deadlines. */
  readonly seq: number;

  constructor(deadline: number, callback: () => void, ref: boolean, seq: number) {
    this.deadline = deadline;
    this.callback = callback;
    this.ref = ref;
    this.seq = seq;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

/**
 * Timers ordered by deadline. `add`, `cancel` and `setRef` are O(log n) or better; `runDue`
 * is O(k log n) for k timers run.
 *
 * @example
 * ```ts
 * const timers = new TimerHeap();
 * const t = timers.add(performance.now() + 50, () => console.log("fired"));
 * timers.timeout(performance.now()); // 50: how long the backend may block
 * timers.cancel(t); // true; a second call returns false
 * timers.runDue(performance.now()); // 0
 * ```
 */
export class TimerHeap {
  private readonly heap: Entry[] = [];
  /**
   * Due timers added by callbacks during runDue(). They join the heap when runDue() returns so a
   * callback that re-arms itself with a zero delay cannot keep one runDue() call going forever.
   */
  private readonly held: Entry[] = [];
  private seq = 0;
  private refs = 0;
  private running = false;
  private runNow = 0;

  /** Number of scheduled timers. */
  get size(): number {
    return this.heap.length + this.held.length;
  }

  /** Number of scheduled timers with `ref === true`; the loop stays alive while this is > 0. */
  get refCount(): number {
    return this.refs;
  }

  /**
   * Schedules `callback` to run once `now >= deadline`.
   *
   * @param deadline Milliseconds on the loop's monotonic clock; must be finite.
   * @param callback Called with no arguments and no `this`.
   * @param ref Whether the timer keeps the loop alive; defaults to true.
   * @returns The timer, for cancel() and setRef().
   * @throws {RangeError} when `deadline` is NaN or infinite, which would break the heap order.
   */
  add(deadline: number, callback: () => void, ref = true): Timer {
    if (!Number.isFinite(deadline)) {
      throw new RangeError(`Timer deadline must be a finite number, got ${deadline}`);
    }
    const timer = new Entry(deadline, callback, ref, this.seq++);
    if (ref) this.refs++;
    if (this.running && deadline <= this.runNow) {
      timer.index = this.held.length;
      this.held.push(timer);
    } else {
      this.insert(timer);
    }
    return timer;
  }

  /**
   * Unschedules `timer`.
   *
   * @returns false, changing nothing, when the timer already fired, was cancelled, was cleared
   *   or belongs to another heap.
   */
  cancel(timer: Timer): boolean {
    const list = this.listOf(timer);
    if (list === undefined) return false;
    if (list === this.heap) {
      this.removeAt(timer.index);
    } else {
      // Order within `held` does not matter: it is re-sorted by (deadline, seq) on insertion.
      const last = this.held.pop();
      if (last !== undefined && last !== timer) {
        this.held[timer.index] = last;
        last.index = timer.index;
      }
    }
    timer.index = -1;
    if (timer.ref) this.refs--;
    return true;
  }

  /**
   * Sets whether `timer` keeps the loop alive. On a timer that is not scheduled here this only
   * records the flag.
   */
  setRef(timer: Timer, ref: boolean): void {
    if (timer.ref !== ref && this.listOf(timer) !== undefined) this.refs += ref ? 1 : -1;
    timer.ref = ref;
  }

  /** The earliest deadline, or undefined when no timer is scheduled. */
  nextDeadline(): number | undefined {
    let min = this.heap.length > 0 ? this.heap[0].deadline : undefined;
    // `held` is non-empty only inside runDue(), when a callback asks.
    for (let i = 0; i < this.held.length; i++) {
      const d = this.held[i].deadline;
      if (min === undefined || d < min) min = d;
    }
    return min;
  }

  /**
   * How long a backend may block: whole milliseconds until the earliest deadline, 0 when a timer
   * is already due, -1 (wait forever) when none is scheduled. Backends clamp the result to the
   * largest timeout their wait call accepts.
   */
  timeout(now: number): number {
    const next = this.nextDeadline();
    if (next === undefined) return -1;
    if (next <= now) return 0;
    // Round up: truncating would turn a 0.3 ms wait into a 0 ms poll that spins until the
    // deadline passes.
    return Math.ceil(next - now);
  }

  /**
   * Runs the timers that were scheduled when the call started and have `deadline <= now`, in
   * (deadline, insertion) order, each removed before its callback runs. Due timers that
   * callbacks add wait for the next call. A callback may cancel timers that have not run yet.
   *
   * A throwing callback does not stop the others: the remaining due timers still run, then the
   * first error is rethrown and later ones are dropped. The heap is consistent either way.
   *
   * @param limit Run at most this many callbacks; the rest stay scheduled.
   * @returns The number of callbacks run.
   * @throws The first error a callback threw; an Error when called from a timer callback.
   */
  runDue(now: number, limit = Infinity): number {
    if (this.running) throw new Error("runDue() cannot be called from a timer callback");
    this.running = true;
    this.runNow = now;
    const heap = this.heap;
    let ran = 0;
    let failed = false;
    let error: unknown;
    while (ran < limit && heap.length > 0 && heap[0].deadline <= now) {
      const timer = this.popMin();
      if (timer.ref) this.refs--;
      ran++;
      try {
        timer.callback();
      } catch (e) {
        if (!failed) {
          failed = true;
          error = e;
        }
      }
    }
    this.running = false;
    for (let i = 0; i < this.held.length; i++) this.insert(this.held[i]);
    this.held.length = 0;
    if (failed) throw error;
    return ran;
  }

  /** Unschedules every timer without running it; cancel() on any of them then returns false. */
  clear(): void {
    for (let i = 0; i < this.heap.length; i++) this.heap[i].index = -1;
    for (let i = 0; i < this.held.length; i++) this.held[i].index = -1;
    this.heap.length = 0;
    this.held.length = 0;
    this.refs = 0;
  }

  /** The list holding `timer`, checked by identity so foreign or stale timers are rejected. */
  private listOf(timer: Timer): Entry[] | undefined {
    const i = timer.index;
    if (i < 0) return undefined;
    if (i < this.heap.length && this.heap[i] === timer) return this.heap;
    if (i < this.held.length && this.held[i] === timer) return this.held;
    return undefined;
  }

  private insert(timer: Entry): void {
    this.heap.push(timer);
    this.siftUp(this.heap.length - 1);
  }

  private popMin(): Entry {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (last !== undefined && last !== top) {
      heap[0] = last;
      this.siftDown(0);
    }
    top.index = -1;
    return top;
  }

  /** Fills slot `i` with the last element, which may belong above or below it. */
  private removeAt(i: number): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || i === heap.length) return;
    heap[i] = last;
    if (i > 0 && before(last, heap[(i - 1) >> 1])) this.siftUp(i);
    else this.siftDown(i);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const timer = heap[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p];
      if (!before(timer, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = timer;
    timer.index = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const timer = heap[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && before(heap[c + 1], heap[c])) c++;
      const child = heap[c];
      if (!before(child, timer)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = timer;
    timer.index = i;
  }
}
