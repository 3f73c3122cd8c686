/**
 * `EVLOOP_DEBUG=1` logging: backend choice, probe failures, driver changes. Off by default and
 * checked once, so the hot path never formats a message.
 */
import { ffi } from "../ffi/runtime/load.js";

/** Whether EVLOOP_DEBUG is set to something other than "" or "0". */
export const DEBUG = !!ffi.env("EVLOOP_DEBUG") && ffi.env("EVLOOP_DEBUG") !== "0";

/** Logs to stderr when EVLOOP_DEBUG is on. */
export function debug(message: string): void {
  if (DEBUG) console.error(`[evloop] ${message}`);
}
