/**
 * Progress of a benchmark run on stderr, so stdout carries only the report.
 *
 * On a terminal it is one line redrawn in place: a bar, the step count, the time left and what
 * is running. Anywhere else (CI, a log file, a pipe) a redrawn line turns into a wall of carriage
 * returns, so each step is printed once, on its own line, with its number.
 */

/** Where progress goes: stderr in the CLI, a buffer in tests. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

const BAR_WIDTH = 24;
const DEFAULT_COLUMNS = 100;

/** `83` → `"1m23s"`, `9.4` → `"9s"`. */
function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/**
 * Counts `total` steps and shows the one running.
 *
 * The time left is the mean time of the finished steps times the steps left: steps differ in
 * length, but each phase of the suite repeats the same few kinds of step, so the estimate
 * settles after a few of them.
 *
 * @example
 * ```ts
 * const progress = new Progress();
 * progress.status("building");
 * progress.begin(2);
 * progress.step("latency · node:net");
 * progress.note("bun: not installed");
 * progress.step("memory");
 * progress.done();
 * ```
 */
export class Progress {
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  readonly #created = performance.now();
  /** When step 1 started, and when the current step did. */
  #stepsStarted = 0;
  #stepStarted = 0;
  #total = 0;
  #current = 0;
  #label = "";
  /** Whether a bar is on screen and must be erased before other output. */
  #drawn = false;
  /** Redraws the bar every second on a terminal, so the time left keeps moving during a step. */
  #ticker: ReturnType<typeof setInterval> | undefined;

  constructor(stream: ProgressStream = process.stderr) {
    this.#stream = stream;
    this.#tty = stream.isTTY === true;
  }

  /** What is happening before the steps can be counted (the build decides which servers run). */
  status(text: string): void {
    if (this.#tty) {
      this.#stream.write(`\r\x1b[K${text}…`);
      this.#drawn = true;
    } else {
      this.#stream.write(`${text}\n`);
    }
  }

  /** Sets the number of steps; the count starts from zero. */
  begin(total: number): void {
    this.#total = Math.max(1, total);
    this.#current = 0;
    if (this.#tty && this.#ticker === undefined) {
      this.#ticker = setInterval(() => {
        if (this.#current > 0) this.#draw();
      }, 1000);
      this.#ticker.unref();
    }
  }

  /** Starts the next step. */
  step(label: string): void {
    const now = performance.now();
    if (this.#current === 0) this.#stepsStarted = now;
    this.#stepStarted = now;
    this.#current = Math.min(this.#current + 1, this.#total);
    this.#label = label;
    if (this.#tty) this.#draw();
    else this.#stream.write(`[${this.#current}/${this.#total}] ${label}\n`);
  }

  /** Renames the running step (a step with phases of its own), without counting a new one. */
  relabel(label: string): void {
    this.#label = label;
    if (this.#tty) this.#draw();
    else this.#stream.write(`[${this.#current}/${this.#total}] ${label}\n`);
  }

  /** A line that stays (a skipped server, a failed run), printed above the bar. */
  note(text: string): void {
    this.#erase();
    this.#stream.write(`${text}\n`);
    if (this.#tty && this.#current > 0) this.#draw();
  }

  /** Erases the bar and says how long the whole run took; the report follows on stdout. */
  done(): void {
    this.stop();
    this.#stream.write(`done in ${formatDuration((performance.now() - this.#created) / 1000)}\n`);
  }

  /** Erases the bar, saying nothing: the run failed, and its error follows. */
  stop(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#erase();
  }

  /** Seconds left: the finished steps' mean length for each step to come, less the current one's progress. */
  #left(): number | undefined {
    const finished = this.#current - 1;
    if (finished <= 0) return undefined;
    const perStep = (this.#stepStarted - this.#stepsStarted) / finished;
    const intoStep = performance.now() - this.#stepStarted;
    return Math.max(0, perStep * (this.#total - finished) - intoStep) / 1000;
  }

  #draw(): void {
    const finished = this.#current - 1;
    const filled = Math.round((finished / this.#total) * BAR_WIDTH);
    const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
    const left = this.#left();
    const head = `${bar} ${this.#current}/${this.#total}${left === undefined ? "" : ` · ${formatDuration(left)} left`}  `;
    const room = Math.max(10, (this.#stream.columns || DEFAULT_COLUMNS) - head.length - 1);
    const label = this.#label.length > room ? `${this.#label.slice(0, room - 1)}…` : this.#label;
    this.#stream.write(`\r\x1b[K${head}${label}`);
    this.#drawn = true;
  }

  #erase(): void {
    if (!this.#drawn) return;
    this.#stream.write("\r\x1b[K");
    this.#drawn = false;
  }
}
