/**
 * Named pipes off Windows, and the name check everywhere: `checkPipeName` is pure (UTF-16,
 * NUL-terminated; TypeError for what is not `\\.\pipe\…`, RangeError past 256 characters), and
 * off Windows `NamedPipeServer.create` throws and `NamedPipe.connect` rejects with a SystemError
 * EOPNOTSUPP naming the alternative. (test/windows/named-pipe.test.mjs runs the classes under
 * Wine.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { NamedPipe, NamedPipeServer, SystemError } from "evloop";
import { checkPipeName, PIPE_NAME_MAX } from "../../dist/sys/windows/pipe.js";

const WINDOWS = process.platform === "win32";

test("checkPipeName() encodes \\\\.\\pipe\\ names as NUL-terminated UTF-16 and refuses the rest", () => {
  const name = "\\\\.\\PIPE\\évloop";
  const wide = checkPipeName(name);
  assert.equal(wide.length, name.length + 1);
  assert.equal(wide[name.length], 0);
  assert.equal(String.fromCharCode(...wide.subarray(0, name.length)), name);
  assert.equal(checkPipeName(`\\\\.\\pipe\\${"x".repeat(PIPE_NAME_MAX - 9)}`).length, PIPE_NAME_MAX + 1);
  assert.throws(() => checkPipeName(`\\\\.\\pipe\\${"x".repeat(PIPE_NAME_MAX - 8)}`), RangeError);
  for (const bad of ["x", "\\\\.\\pipe\\", "\\\\host\\pipe\\x", "\\\\.\\pipe\\a\0b", 7, null]) {
    assert.throws(() => checkPipeName(bad), TypeError, String(bad));
  }
});

test("NamedPipeServer.create and NamedPipe.connect refuse off Windows with EOPNOTSUPP naming the alternative", { skip: WINDOWS && "Windows has them" }, async () => {
  const refusal = (what) => (e) => e instanceof SystemError && e.code === "EOPNOTSUPP" && e.message.includes(`${what} is only on Windows: use a UnixListener`);
  assert.throws(() => NamedPipeServer.create({ name: "\\\\.\\pipe\\x" }), refusal("NamedPipeServer"));
  await assert.rejects(NamedPipe.connect({ name: "\\\\.\\pipe\\x" }), refusal("NamedPipe"));
});
