/**
 * The IOCP backend's own guarantees, beyond the conformance suite (which runs on iocp too):
 * both completion paths of skip-on-success, no stray packets, and no handle leaks. Runs under
 * Windows node.exe (`npm run test:windows`, through Wine here).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createLoop, runMain, TcpListener, TcpStream } from "evloop";
import { processHandleCount } from "../../dist/sys/windows/socket.js";
import { raw } from "../helpers.mjs";

/** Connects `n` clients to `listener` and echoes `bytes` through each; returns the pairs. */
async function connections(loop, listener, n, bytes) {
  const pairs = [];
  for (let i = 0; i < n; i += 100) {
    const batch = Math.min(100, n - i);
    const made = await Promise.all(
      Array.from({ length: batch }, async () => {
        const [client, server] = await Promise.all([TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop }), listener.accept()]);
        return [client, server];
      }),
    );
    pairs.push(...made);
  }
  if (bytes > 0) {
    await Promise.all(
      pairs.map(async ([client, server]) => {
        const out = new Uint8Array(bytes).fill(7);
        await client.writeAll(out);
        const got = new Uint8Array(bytes);
        let have = 0;
        while (have < bytes) have += await server.read(got.subarray(have));
        assert.ok(got.every((b) => b === 7));
      }),
    );
  }
  return pairs;
}

async function closeAll(pairs) {
  await Promise.all(pairs.flatMap(([a, b]) => [a.close(), b.close()]));
}

for (const mode of ["guest", "owner"]) {
  describe(`iocp ${mode}`, () => {
    const drive = (loop, body) => (mode === "guest" ? body() : runMain(body, { loop }));

    test("skip-on-success: operations complete within their call or through the port, each once", async () => {
      const loop = createLoop({ backend: "iocp", guest: mode === "guest" });
      try {
        await drive(loop, async () => {
          const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
          const pairs = await connections(loop, listener, 20, 4096);
          // A read of data already there completes within the call; a read that waits, by packet.
          const [client, server] = pairs[0];
          await client.writeAll(new Uint8Array([1, 2, 3]));
          await loop.sleep(50);
          const buf = new Uint8Array(16);
          assert.equal(await server.read(buf), 3);
          const waiting = server.read(buf);
          await client.writeAll(new Uint8Array([4]));
          assert.equal(await waiting, 1);
          await closeAll(pairs);
          await listener.close();
        });
        const { inline, packets, stray } = loop.stats;
        assert.ok(inline > 0, `some operations completed within their call (inline ${inline})`);
        assert.ok(packets > 0, `some completed through the port (packets ${packets})`);
        assert.equal(stray, 0);
      } finally {
        loop.dispose();
      }
    });

    test("without skip-on-success every operation completes through its packet, once", async () => {
      const loop = createLoop({ backend: "iocp", guest: mode === "guest", iocp: { skipOnSuccess: false } });
      try {
        await drive(loop, async () => {
          const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
          const pairs = await connections(loop, listener, 20, 4096);
          await closeAll(pairs);
          await listener.close();
        });
        const { inline, packets, stray } = loop.stats;
        assert.equal(inline, 0);
        assert.ok(packets >= 20 * 4, `packets ${packets}`);
        assert.equal(stray, 0);
      } finally {
        loop.dispose();
      }
    });

    test("no handle leaks: the handle count returns to its start after 1,000 connections", async () => {
      const loop = createLoop({ backend: "iocp", guest: mode === "guest" });
      try {
        await drive(loop, async () => {
          const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
          // Warm up whatever is made once (the AFD device, Winsock's extension functions).
          const warm = await connections(loop, listener, 2, 16);
          await loop.waitWritable(warm[0][0].fd);
          await closeAll(warm);
          const start = processHandleCount();
          const pairs = await connections(loop, listener, 1000, 16);
          const fds = pairs.flat().map((stream) => stream.fd);
          await closeAll(pairs);
          assert.equal(processHandleCount(), start);
          // Wine leaves sockets out of GetProcessHandleCount (Windows counts them): ask each one.
          // Nothing made a socket since, so no number was reused.
          const open = fds.filter((fd) => raw.isOpen(fd));
          assert.deepEqual(open, [], "every socket of the 1,000 connections is closed");
          await listener.close();
        });
      } finally {
        loop.dispose();
      }
    });
  });
}
