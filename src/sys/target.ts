/**
 * The constants and struct layouts of the target we run on. Linux is the only target so far;
 * kqueue (BSD/macOS) and Windows targets add their own tables beside `linux/constants.ts` and are
 * chosen here.
 */
import { ffi } from "../ffi/runtime/load.js";
import { C, ERRNO, LAYOUT, cmsgLen, cmsgSpace } from "./linux/constants.js";

if (ffi.platform !== "linux") {
  throw new Error(`evloop does not support ${ffi.platform} yet: only Linux targets are implemented`);
}

export { C, ERRNO, LAYOUT, cmsgLen, cmsgSpace };

/** poll(2) events meaning "readable": data, priority data, or the peer's end of stream. */
export const POLL_READABLE = C.POLLIN | C.POLLPRI | C.POLLRDHUP;
/** poll(2) events meaning "writable". */
export const POLL_WRITABLE = C.POLLOUT;
