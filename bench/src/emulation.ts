/**
 * Backends that run on an emulation here instead of the kernel's own facility. kqueue on Linux is
 * libkqueue (the library EVLOOP_KQUEUE_LIB names), a userspace kqueue over epoll that lets the
 * kqueue backend be tested without a Mac or a BSD; what the bench measures there is libkqueue.
 * Such a backend is benchmarked only when it is available (without the library it is simply not
 * there, not a skipped server), and the report says what its figures are.
 */

/**
 * What `backend`'s figures measure when it is emulated here, or undefined when it is the real one.
 *
 * @example
 * ```ts
 * emulationNote("kqueue"); // on Linux: "kqueue figures (…) measure libkqueue …"
 * emulationNote("epoll"); // undefined
 * ```
 */
export function emulationNote(backend: string): string | undefined {
  if (backend !== "kqueue" || process.platform !== "linux") return undefined;
  const lib = process.env.EVLOOP_KQUEUE_LIB;
  return `kqueue figures (evloop-kqueue-* and kqueue in the internals) measure libkqueue${lib ? ` at ${lib}` : ""}, a userspace emulation of kqueue over epoll on Linux, not a real kqueue: they say nothing about kqueue on macOS or the BSDs`;
}
