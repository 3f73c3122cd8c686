/**
 * Windows handles on the loop (the IOCP backend): `OverlappedHandle` and `loop.overlapped` run
 * the caller's own overlapped calls — here kernel32's ReadFile and WriteFile, bound with koffi as
 * a user would — on a file opened with FILE_FLAG_OVERLAPPED, at explicit offsets, several at
 * once; one aborted mid-flight leaves its buffer untouched and loses nothing; and plain
 * `loop.read`/`loop.write` work on a pipe handle (ReadFile/WriteFile underneath), with the other
 * end's close read as the end of the stream and a write to it failing with EPIPE. Skipped off
 * Windows (`npm run test:windows` runs it under Wine).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClosedError, createLoop, OverlappedHandle, SystemError } from "evloop";

const WINDOWS = process.platform === "win32";

const GENERIC_READ = 0x80000000;
const GENERIC_WRITE = 0x40000000;
const CREATE_ALWAYS = 2;
const OPEN_EXISTING = 3;
const FILE_ATTRIBUTE_NORMAL = 0x80;
const FILE_FLAG_OVERLAPPED = 0x40000000;
const FILE_FLAG_DELETE_ON_CLOSE = 0x04000000;
const PIPE_ACCESS_DUPLEX = 3;
const ERROR_IO_PENDING = 997;
const INVALID_HANDLE = -1;

/** kernel32 and native memory, bound with koffi as a user of OverlappedHandle would. */
async function win32() {
  const { default: koffi } = await import("koffi");
  const k = koffi.load("kernel32.dll");
  return {
    koffi,
    CreateFileW: k.func("intptr_t __stdcall CreateFileW(str16 name, uint32_t access, uint32_t share, void *sa, uint32_t disposition, uint32_t flags, void *template)"),
    CreateNamedPipeW: k.func("intptr_t __stdcall CreateNamedPipeW(str16 name, uint32_t open, uint32_t mode, uint32_t max, uint32_t out, uint32_t in, uint32_t timeout, void *sa)"),
    ReadFile: k.func("int __stdcall ReadFile(intptr_t h, intptr_t buf, uint32_t n, void *read, intptr_t ov)"),
    WriteFile: k.func("int __stdcall WriteFile(intptr_t h, intptr_t buf, uint32_t n, void *written, intptr_t ov)"),
    GetLastError: k.func("uint32_t __stdcall GetLastError()"),
    CloseHandle: k.func("int __stdcall CloseHandle(intptr_t h)"),
  };
}

/** `n` bytes of native memory, as an address and a Uint8Array over it; `free()` when done. */
async function native(n) {
  const { heapAlloc, heapFree } = await import("../../dist/sys/windows/memory.js");
  const { ffi } = await import("../../dist/ffi/runtime/load.js");
  const address = heapAlloc(n);
  return { address, bytes: new Uint8Array(ffi.view(address, n)), free: () => heapFree(address) };
}

describe("Windows handles on the loop", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, () => {
  for (const skipOnSuccess of [true, false]) {
    test(`a file with FILE_FLAG_OVERLAPPED: writes and reads at explicit offsets, four in flight at once (skipOnSuccess ${skipOnSuccess})`, async () => {
      const w = await win32();
      const loop = createLoop({ backend: "iocp", iocp: { skipOnSuccess } });
      const path = join(tmpdir(), `evloop-overlapped-${process.pid}-${skipOnSuccess}.bin`);
      const h = w.CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, null, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, null);
      assert.notEqual(h, INVALID_HANDLE, `CreateFileW failed: ${w.GetLastError()}`);
      const CHUNK = 64 * 1024;
      const buffers = await Promise.all([0, 1, 2, 3].map(() => native(CHUNK)));
      const file = OverlappedHandle.from(h, { loop });
      try {
        buffers.forEach((b, i) => b.bytes.fill(0x41 + i));
        const writes = buffers.map((b, i) =>
          file.run((ov) => (w.WriteFile(h, Number(b.address), CHUNK, null, Number(ov)) ? 0 : w.GetLastError()), { offset: i * CHUNK, timeout: 10_000 }),
        );
        for (const r of await Promise.all(writes)) assert.deepEqual(r, { bytes: CHUNK, status: 0 });
        for (const b of buffers) b.bytes.fill(0);
        // Read back in the reverse order, so a read that ignored its offset would be seen.
        const reads = buffers.map((b, i) =>
          file.run((ov) => (w.ReadFile(h, Number(b.address), CHUNK, null, Number(ov)) ? 0 : w.GetLastError()), { offset: (3 - i) * CHUNK, timeout: 10_000 }),
        );
        for (const r of await Promise.all(reads)) assert.deepEqual(r, { bytes: CHUNK, status: 0 });
        buffers.forEach((b, i) => assert.ok(b.bytes.every((x) => x === 0x41 + 3 - i), `chunk ${i} holds what was written at offset ${(3 - i) * CHUNK}`));
        // Past the end: the read completes with ERROR_HANDLE_EOF (38) and no bytes, or fails so.
        const end = await file
          .run((ov) => (w.ReadFile(h, Number(buffers[0].address), CHUNK, null, Number(ov)) ? 0 : w.GetLastError()), { offset: 4 * CHUNK })
          .then((r) => r.status, (e) => e.errno);
        assert.ok(end === 38 || end === undefined || end > 0, `a read past the end reports EOF, got ${end}`);
      } finally {
        await file.close();
        for (const b of buffers) b.free();
        loop.dispose();
      }
    });
  }

  test("an overlapped read aborted mid-flight rejects with the reason, its buffer untouched, and the data goes to the next read", async () => {
    const w = await win32();
    const loop = createLoop({ backend: "iocp" });
    const name = `\\\\.\\pipe\\evloop-overlapped-${process.pid}`;
    const server = w.CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, 0, 1, 4096, 4096, 0, null);
    assert.notEqual(server, INVALID_HANDLE, `CreateNamedPipeW failed: ${w.GetLastError()}`);
    const client = w.CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, null, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, null);
    assert.notEqual(client, INVALID_HANDLE, `CreateFileW of the pipe failed: ${w.GetLastError()}`);
    const buf = await native(64);
    const s = OverlappedHandle.from(server, { loop });
    try {
      buf.bytes.fill(0xee);
      const controller = new AbortController();
      const reading = s.run((ov) => (w.ReadFile(server, Number(buf.address), 64, null, Number(ov)) ? 0 : w.GetLastError()), { signal: controller.signal });
      await loop.sleep(20);
      controller.abort(new Error("stop"));
      await assert.rejects(reading, /stop/);
      assert.ok(buf.bytes.every((x) => x === 0xee), "the aborted read wrote nothing");
      // Nothing was consumed: the client's bytes reach the next read.
      const sent = await loop.write(client, new TextEncoder().encode("after"));
      assert.equal(sent, 5);
      const got = new Uint8Array(16);
      const n = await loop.read(server, got, { timeout: 5000 });
      assert.equal(new TextDecoder().decode(got.subarray(0, n)), "after");
    } finally {
      await s.close();
      await loop.close(client);
      buf.free();
      loop.dispose();
    }
  });

  test("loop.read and loop.write on a pipe handle; the other end's close is EOF, and a write to it EPIPE", async () => {
    const w = await win32();
    const loop = createLoop({ backend: "iocp" });
    const name = `\\\\.\\pipe\\evloop-handles-${process.pid}`;
    const server = w.CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, 0, 1, 65536, 65536, 0, null);
    const client = w.CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, null, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, null);
    assert.notEqual(client, INVALID_HANDLE, `CreateFileW of the pipe failed: ${w.GetLastError()}`);
    try {
      const payload = new Uint8Array(300_000).map((_, i) => i % 251);
      const writing = (async () => {
        for (let at = 0; at < payload.length; ) at += await loop.write(client, payload.subarray(at), { timeout: 10_000 });
      })();
      const got = new Uint8Array(payload.length);
      let total = 0;
      while (total < payload.length) total += await loop.read(server, got.subarray(total), { timeout: 10_000 });
      await writing;
      assert.deepEqual(got, payload);
      await loop.close(client);
      assert.equal(await loop.read(server, new Uint8Array(8), { timeout: 5000 }), 0, "the client's close is the end of the stream");
      await assert.rejects(loop.write(server, new Uint8Array([1]), { timeout: 5000 }), (e) => e instanceof SystemError && e.code === "EPIPE");
    } finally {
      await loop.close(server);
      loop.dispose();
    }
  });

  test("bad starts: an error code rejects mapped, a throw rejects, a pending operation rejects on close once given back", async () => {
    const w = await win32();
    const loop = createLoop({ backend: "iocp" });
    const name = `\\\\.\\pipe\\evloop-bad-${process.pid}`;
    const server = w.CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, 0, 1, 4096, 4096, 0, null);
    const client = w.CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, null, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, null);
    const buf = await native(16);
    const s = OverlappedHandle.from(server, { loop });
    try {
      await assert.rejects(s.run(() => 6 /* ERROR_INVALID_HANDLE */), (e) => e instanceof SystemError && e.syscall === "overlapped");
      await assert.rejects(s.run(() => { throw new Error("no"); }), /no/);
      // A handle's methods reject (as a stream's do); the loop's own throw.
      await assert.rejects(s.run("nope"), TypeError);
      await assert.rejects(s.run(() => 0, { offset: -1 }), RangeError);
      assert.throws(() => loop.overlapped(server, "nope"), TypeError);
      assert.throws(() => OverlappedHandle.from(-5), TypeError);
      const pending = s.run((ov) => (w.ReadFile(server, Number(buf.address), 16, null, Number(ov)) ? 0 : w.GetLastError()));
      await loop.sleep(10);
      await s.close();
      await assert.rejects(pending, (e) => e instanceof ClosedError);
      await assert.rejects(s.run(() => 0), (e) => e instanceof SystemError && e.code === "EBADF");
    } finally {
      await loop.close(client);
      buf.free();
      loop.dispose();
    }
  });
});
