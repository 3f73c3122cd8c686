/**
 * Counts a server's system calls over a window this script opens and closes, with perf(1):
 *
 *     perf stat -e raw_syscalls:sys_enter -p <pid> -x , -D -1 --control fd:3,4
 *
 * `-p` attaches a counter to every thread of the process, and threads it starts later inherit
 * it; `-D -1` starts it disabled. `enable` and `disable` written to fd 3 open and close the
 * window, and perf answers each with `ack` on fd 4, so the window's length is known to this
 * script; SIGINT then makes perf print the total (CSV, on stderr) and exit. A `ping` at start
 * says when perf has attached, so it never costs the measured window its start-up.
 *
 * Needs perf 5.12 or later (`ping`), a readable tracefs, and the right to trace the server:
 * root, CAP_PERFMON, or a low enough `kernel.perf_event_paranoid`. Where any is missing,
 * {@link SyscallCounter.attach} rejects with perf's own explanation and the bench goes on
 * without the figure.
 *
 * Counting costs the server a little: while a raw_syscalls tracepoint is enabled, every system
 * call on the machine takes the kernel's slower, traced entry path.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";

/** The tracepoint that fires once on entry to every system call. */
export const SYSCALL_EVENT = "raw_syscalls:sys_enter";
/** How long perf may take to attach and answer its first `ping`. */
const ATTACH_TIMEOUT_MS = 5000;
/** How long perf may take to acknowledge `enable` or `disable`. */
const ACK_TIMEOUT_MS = 2000;
/** How long perf may take to print its count after SIGINT. */
const EXIT_TIMEOUT_MS = 5000;
const STDERR_TAIL = 4000;
/** Control commands perf understands; each is answered by one `ack` line. */
type Command = "ping" | "enable" | "disable";

/** Why perf could not count: missing, not permitted, or it failed during the run. */
export class SyscallCountError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SyscallCountError";
  }
}

/** System calls counted between `enable` and `disable`, and how long that was. */
export interface SyscallWindow {
  readonly count: number;
  readonly seconds: number;
}

/** perf processes still running, killed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * The count perf printed for {@link SYSCALL_EVENT} in its `-x ,` output: `count,unit,event,…`.
 * `<not counted>` means no thread of the process ran while the counter was enabled, so it made
 * no system call.
 */
function parseCount(stderr: string): number | string {
  for (const line of stderr.split("\n")) {
    const fields = line.trim().split(",");
    if (fields[2] !== SYSCALL_EVENT) continue;
    const count = fields[0] ?? "";
    if (count === "<not counted>") return 0;
    const n = Number(count);
    return count !== "" && Number.isFinite(n) ? n : `perf stat printed ${JSON.stringify(count)} for ${SYSCALL_EVENT}`;
  }
  return `perf stat printed no count for ${SYSCALL_EVENT}`;
}

/**
 * perf's complaint as one line: without its progress messages, the usage it prints after an
 * option it rejected, its pointer to `perf list`, and the `\___` that underlines a bad event.
 */
function explain(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/\\_+/g, "").replace(/\s+/g, " ").trim());
  const usage = lines.findIndex((l) => l.startsWith("Usage:"));
  return (usage < 0 ? lines : lines.slice(0, usage))
    .filter((l) => l !== "" && !/^Events (en|dis)abled$/.test(l) && !l.startsWith("Run 'perf list'"))
    .join(" ")
    .slice(0, 400);
}

/**
 * One perf process counting one server's system calls.
 *
 * @example
 * ```ts
 * const counter = await SyscallCounter.attach(server.pid);
 * await counter.enable();
 * await sleep(2000);
 * counter.disable();
 * const { count, seconds } = await counter.result();
 * ```
 */
export class SyscallCounter {
  readonly #child: ChildProcess;
  readonly #control: Writable;
  readonly #waiters: { resolve: () => void; reject: (e: SyscallCountError) => void }[] = [];
  readonly #exited: Promise<void>;
  #stderr = "";
  /** How perf ended; null while it runs. */
  #ended: string | null = null;
  /** The first thing that went wrong; once set, {@link result} rejects with it. */
  #failure: SyscallCountError | null = null;
  #enabledAt = Number.NaN;
  #disabledAt = Number.NaN;
  #disabled: Promise<void> | null = null;

  private constructor(pid: number) {
    const child = spawn("perf", ["stat", "-e", SYSCALL_EVENT, "-p", String(pid), "-x", ",", "-D", "-1", "--control", "fd:3,4"], {
      stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    this.#child = child;
    live.add(child);
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => {
        for (const c of live) c.kill("SIGKILL");
      });
    }
    this.#control = child.stdio[3] as Writable;
    // EPIPE once perf is gone: its exit already says what happened.
    this.#control.on("error", () => {});
    const acks = child.stdio[4] as Readable;
    acks.setEncoding("utf8");
    let pending = "";
    acks.on("data", (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        pending = pending.slice(nl + 1);
        this.#waiters.shift()?.resolve();
      }
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-STDERR_TAIL);
    });
    this.#exited = new Promise((resolve) => {
      const end = (how: string, error: SyscallCountError): void => {
        if (this.#ended !== null) return;
        this.#ended = how;
        live.delete(child);
        for (const w of this.#waiters.splice(0)) w.reject(error);
        resolve();
      };
      // "close", not "exit": perf's stderr, which holds its reason, is only complete then.
      child.once("close", (code, signal) => {
        const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
        const why = explain(this.#stderr);
        end(how, new SyscallCountError(why === "" ? `perf stat ended (${how})` : why));
      });
      // A perf that could not be spawned emits "error" and may never emit "close".
      child.on("error", (e: NodeJS.ErrnoException) => {
        if (child.pid !== undefined) return;
        const why = e.code === "ENOENT" ? "perf is not installed" : `cannot run perf: ${e.message}`;
        end(why, new SyscallCountError(why, { cause: e }));
      });
    });
  }

  /**
   * Starts perf on `pid`, counter disabled, and resolves once perf has attached. Rejects with
   * {@link SyscallCountError} (perf's reason in its message) when perf is missing, not
   * permitted, or does not answer; aborting `signal` kills perf.
   */
  static async attach(pid: number, signal?: AbortSignal): Promise<SyscallCounter> {
    signal?.throwIfAborted();
    const counter = new SyscallCounter(pid);
    const abort = (): void => counter.stop();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await counter.#command("ping", ATTACH_TIMEOUT_MS);
      return counter;
    } catch (e) {
      counter.stop();
      await counter.#exited;
      throw e;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  /** Sends `command` and resolves on its `ack`; rejects when perf ends or takes over `timeoutMs`. */
  #command(command: Command, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#ended !== null) {
        reject(new SyscallCountError(`perf stat ended (${this.#ended})`));
        return;
      }
      const waiter = {
        resolve: (): void => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: SyscallCountError): void => {
          clearTimeout(timer);
          reject(e);
        },
      };
      // A late ack would be taken for the next command's: the counter is unusable after this.
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new SyscallCountError(`perf stat did not acknowledge ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
      this.#control.write(`${command}\n`);
    });
  }

  #fail(e: unknown): void {
    this.#failure ??= e instanceof SyscallCountError ? e : new SyscallCountError(String(e), { cause: e });
  }

  /** Opens the window; resolves once perf has enabled its counter. Never rejects: {@link result} does. */
  async enable(): Promise<void> {
    this.#enabledAt = performance.now();
    await this.#command("enable", ACK_TIMEOUT_MS).catch((e: unknown) => this.#fail(e));
  }

  /**
   * Closes the window now. perf disables its counter a moment later, as it enabled it a moment
   * after {@link enable} was called: the two delays cancel out in the window's length.
   */
  disable(): void {
    this.#disabledAt = performance.now();
    this.#disabled = this.#command("disable", ACK_TIMEOUT_MS).catch((e: unknown) => this.#fail(e));
  }

  /** Stops perf and resolves with what it counted between {@link enable} and {@link disable}. */
  async result(): Promise<SyscallWindow> {
    if (this.#disabled === null) throw new SyscallCountError("the window was never closed");
    await this.#disabled;
    if (this.#failure !== null) throw this.#failure;
    if (this.#ended !== null) throw new SyscallCountError(`perf stat ended before the window closed (${this.#ended})`);
    this.#child.kill("SIGINT");
    const late = setTimeout(() => this.stop(), EXIT_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(late);
    const count = parseCount(this.#stderr);
    if (typeof count === "string") throw new SyscallCountError(`${count}: ${explain(this.#stderr)}`);
    return { count, seconds: (this.#disabledAt - this.#enabledAt) / 1000 };
  }

  /** Kills perf if it still runs (after a failed run); harmless otherwise. */
  stop(): void {
    if (this.#ended === null) this.#child.kill("SIGKILL");
  }
}
