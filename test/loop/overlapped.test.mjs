/**
 * `loop.overlapped` and `OverlappedHandle` off Windows: overlapped operations are the IOCP
 * backend's, so every other backend rejects them with EOPNOTSUPP, after checking its arguments
 * like any operation; `OverlappedHandle.from` throws EOPNOTSUPP. (On Windows, test/windows/
 * overlapped.test.mjs runs them.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createLoop, OverlappedHandle, SystemError } from "evloop";
import { testBackends } from "../helpers.mjs";

const WINDOWS = process.platform === "win32";

for (const backend of testBackends()) {
  test(`${backend}: overlapped() rejects with EOPNOTSUPP; bad arguments throw first`, { skip: WINDOWS && "Windows runs overlapped operations" }, async () => {
    const loop = createLoop({ backend, guest: false });
    try {
      await assert.rejects(loop.overlapped(3, () => 997), (e) => e instanceof SystemError && e.code === "EOPNOTSUPP" && e.message.includes("iocp"));
      assert.throws(() => loop.overlapped(3, "nope"), TypeError);
      assert.throws(() => loop.overlapped(-1, () => 0), TypeError);
      assert.throws(() => loop.overlapped(3, () => 0, { offset: -1 }), RangeError);
      assert.throws(() => loop.overlapped(3, () => 0, { offset: 2n ** 60n }), RangeError);
    } finally {
      loop.dispose();
    }
  });
}

test("OverlappedHandle.from throws EOPNOTSUPP off Windows", { skip: WINDOWS && "Windows has it" }, () => {
  assert.throws(() => OverlappedHandle.from(3), (e) => e instanceof SystemError && e.code === "EOPNOTSUPP");
});
