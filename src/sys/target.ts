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
