/**
 * The Windows test environment itself (scripts/windows-node.sh, run by scripts/test-windows.mjs):
 * this is the Windows build of Node, the system reports Windows 10 (node.exe 22 refuses older
 * versions), koffi's win32-x64 build loads and calls into kernel32, and evloop with the suite's
 * helpers imports. Under Wine or on Windows alike; the Linux runner skips test/windows/.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { basename } from "node:path";
import koffi from "koffi";

test("node is the Windows x64 build", () => {
  assert.equal(process.platform, "win32");
  assert.equal(process.arch, "x64");
  assert.equal(basename(process.execPath).toLowerCase(), "node.exe");
});

test("the system reports Windows 10 or later", () => {
  const major = Number(release().split(".")[0]);
  assert.ok(major >= 10, `os.release() is ${release()}`);
});

test("koffi loads kernel32.dll and GetCurrentProcessId() is this process's pid", () => {
  const kernel32 = koffi.load("kernel32.dll");
  try {
    const GetCurrentProcessId = kernel32.func("uint32_t __stdcall GetCurrentProcessId(void)");
    assert.equal(GetCurrentProcessId(), process.pid);
  } finally {
    kernel32.unload();
  }
});

test("evloop and test/helpers.mjs import on Windows", async () => {
  const evloop = await import("evloop");
  const helpers = await import("../helpers.mjs");
  assert.equal(typeof evloop.createLoop, "function");
  assert.ok(Array.isArray(evloop.availableBackends()));
  assert.ok(Array.isArray(helpers.testBackends()));
});
