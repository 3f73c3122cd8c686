/**
 * How a loop has an fd it holds for someone closed if the thread goes away first. The drivers
 * know how (`driver/cleanup.ts`: native cleanup hooks in a Node Worker) and install it here at
 * import; a backend that keeps fds nobody else holds yet — io_uring's connections accepted
 * ahead of `accept()` — calls it, without importing the driver layer above it. Until installed,
 * and wherever nothing is needed (the main thread), both functions do nothing.
 */

/** Registers and cancels the close of an fd at the thread's exit. */
export interface ExitHooks {
  /** Has `fd` closed when the thread's environment goes away. Idempotent. */
  closeAtExit(fd: number): void;
  /** Cancels that, before the fd is closed or handed over. */
  keepAtExit(fd: number): void;
}

const installed: ExitHooks = { closeAtExit: () => {}, keepAtExit: () => {} };

/** The hooks in force. */
export const exitHooks: Readonly<ExitHooks> = installed;

/** Installs the driver's hooks (called once, by `driver/cleanup.ts`). */
export function installExitHooks(hooks: ExitHooks): void {
  installed.closeAtExit = hooks.closeAtExit;
  installed.keepAtExit = hooks.keepAtExit;
}
