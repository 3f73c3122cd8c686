/**
 * The pipe waker, for systems without eventfd (macOS, the BSDs): the read end is the pollable
 * fd, and a wake writes one byte to the write end. Both ends are non-blocking and close-on-exec.
 *
 * A full pipe (64 KiB of wake-ups nobody drained) makes the write fail with EAGAIN, which means
 * wake-ups are pending anyway, so it is not an error. A wake after the owner closed the waker
 * fails with EPIPE or EBADF, as a write to the eventfd would: the runtimes evloop runs on ignore
 * SIGPIPE, so the process is not killed.
 */
import { call } from "../errors.js";
import { libc } from "../libc.js";
import type { FdWakerHandle, WakeupFd } from "../wakeup.js";
import { close, pipe, read } from "./fd.js";

// Per-thread scratch: every thread (Worker) has its own instance of this module.
const ONE_BYTE = new Uint8Array([1]);
const drainBuf = new Uint8Array(256);

/** Wakes the pipe waker whose write end is `fd` (from any thread). */
export function pipeWake(fd: number): void {
  call("write", true, libc.write, fd, ONE_BYTE, 1);
}

class PipeWakeup implements WakeupFd {
  readonly fd: number;
  readonly handle: FdWakerHandle;
  readonly #writeFd: number;
  #closed = false;

  constructor() {
    const [r, w] = pipe(true);
    this.fd = r;
    this.#writeFd = w;
    this.handle = { kind: "pipe", fd: w };
  }

  wake(): void {
    pipeWake(this.#writeFd);
  }

  drain(): void {
    // A short read (or would-block) means the pipe is empty.
    while (read(this.fd, drainBuf) === drainBuf.byteLength);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.fd);
    close(this.#writeFd);
  }
}

/** A waker fd on a pipe (see `../wakeup.ts`). */
export function pipeWakeup(): WakeupFd {
  return new PipeWakeup();
}
