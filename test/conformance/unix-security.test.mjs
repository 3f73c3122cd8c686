/**
 * Unix sockets' access control: `mode` on UnixListener.bind and UnixDatagram.bind (the socket
 * file's permission bits, set before the file appears at its path; EADDRINUSE for an existing
 * path; RangeError/TypeError for a bad mode or an abstract name; nothing left behind), and
 * `peerCredentials()` on both ends of a connection and of a pair.
 *
 * When the suite runs as root, a child process running as `nobody` (of the runtime running the
 * tests) checks that the bits are enforced: it cannot connect to a 0o600 socket and can connect
 * to a 0o666 one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLoop, runMain, SystemError, UnixDatagram, UnixListener, UnixStream } from "evloop";
import { abstractName, bytes, evalCommand, forEachLoop, MODES, readExactly, text } from "../helpers.mjs";

/** A fresh directory for one test's socket files; removed by the caller. */
function freshDir() {
  return mkdtempSync(join(tmpdir(), `evloop-sec-${process.pid}-`));
}

const permissions = (path) => statSync(path).mode & 0o777;

/** The directory holds exactly `names`: no temporary directory or name was left behind. */
function assertOnly(dir, names) {
  assert.deepEqual(readdirSync(dir).sort(), [...names].sort(), `unexpected entries in ${dir}`);
}

const isAddrInUse = (e) => e instanceof SystemError && e.code === "EADDRINUSE" && e.syscall === "bind";

forEachLoop("unix security", (ctx) => {
  test("UnixListener.bind({ mode }) gives the socket file exactly those bits, whatever the umask, and leaves no temporary entries", () =>
    ctx.run(async () => {
      const dir = freshDir();
      // A umask that would leave the file world-writable, the usual one, and one that takes
      // away bits `mode` asks for: mode must not depend on it.
      const umask = process.umask(0);
      try {
        for (const [mask, mode] of [0, 0o022, 0o077].flatMap((m) => [0o600, 0o660, 0o640, 0o666, 0o700, 0o000].map((b) => [m, b]))) {
          process.umask(mask);
          const path = join(dir, `m${mode.toString(8)}-u${mask.toString(8)}.sock`);
          const l = await UnixListener.bind({ path, mode, loop: ctx.loop });
          try {
            assert.equal(permissions(path), mode, `mode 0o${mode.toString(8)}`);
            assert.ok(lstatSync(path).isSocket(), "the path is the socket itself, not a link to it");
            assert.equal(statSync(path).nlink, 1, "the temporary name was removed");
            assert.deepEqual(l.address, { family: "unix", path });
          } finally {
            await l.close();
          }
          assert.equal(existsSync(path), false, "close() removed the socket file");
        }
        assertOnly(dir, []);
      } finally {
        process.umask(umask);
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("a listener bound with mode accepts, reports its path, and the accepted stream's localAddress is that path", () =>
    ctx.run(async () => {
      const dir = freshDir();
      const path = join(dir, "srv.sock");
      try {
        const l = await UnixListener.bind({ path, mode: 0o600, loop: ctx.loop });
        try {
          const [c, s] = await ctx.both(
            () => UnixStream.connect({ path, timeout: 5000, loop: ctx.loop }),
            () => l.accept({ timeout: 5000 }),
          );
          try {
            assert.deepEqual(s.localAddress, { family: "unix", path });
            await c.writeAll(bytes("private"));
            assert.equal(text(await readExactly(s, 7)), "private");
          } finally {
            await c.close();
            await s.close();
          }
          assertOnly(dir, ["srv.sock"]);
        } finally {
          await l.close();
        }
        assertOnly(dir, []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("bind({ mode }) on an existing path rejects with EADDRINUSE, leaves that file alone and removes its temporary entries", () =>
    ctx.run(async () => {
      const dir = freshDir();
      try {
        const taken = join(dir, "taken.sock");
        const first = await UnixListener.bind({ path: taken, mode: 0o600, loop: ctx.loop });
        try {
          await assert.rejects(UnixListener.bind({ path: taken, mode: 0o600, loop: ctx.loop }), isAddrInUse);
          await assert.rejects(UnixDatagram.bind({ path: taken, mode: 0o644, loop: ctx.loop }), isAddrInUse);
          assert.equal(permissions(taken), 0o600, "the failed binds changed the existing file's mode");
          const plain = join(dir, "plain-file");
          writeFileSync(plain, "not a socket");
          chmodSync(plain, 0o640);
          await assert.rejects(UnixListener.bind({ path: plain, mode: 0o600, loop: ctx.loop }), isAddrInUse);
          assert.equal(permissions(plain), 0o640);
          assertOnly(dir, ["taken.sock", "plain-file"]);
        } finally {
          await first.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("UnixDatagram.bind({ mode }) sets the bits; address is the path; datagrams arrive", () =>
    ctx.run(async () => {
      const dir = freshDir();
      const path = join(dir, "d.sock");
      try {
        const d = await UnixDatagram.bind({ path, mode: 0o620, loop: ctx.loop });
        const sender = UnixDatagram.unbound({ loop: ctx.loop });
        try {
          assert.equal(permissions(path), 0o620);
          assert.deepEqual(d.address, { family: "unix", path });
          assertOnly(dir, ["d.sock"]);
          await sender.sendTo(bytes("dgram"), path, { timeout: 5000 });
          const buf = new Uint8Array(16);
          const { bytes: n } = await d.receiveFrom(buf, { timeout: 5000 });
          assert.equal(text(buf.subarray(0, n)), "dgram");
        } finally {
          await sender.close();
          await d.close();
        }
        assertOnly(dir, []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("a bad mode is a RangeError, mode on an abstract name a TypeError, and neither creates anything", () =>
    ctx.run(async () => {
      const dir = freshDir();
      try {
        const path = join(dir, "bad.sock");
        for (const mode of [-1, 0o1000, 0o4755, 1.5, NaN, Infinity, "0600", null, 600n]) {
          await assert.rejects(UnixListener.bind({ path, mode, loop: ctx.loop }), RangeError, `listener mode ${String(mode)}`);
          await assert.rejects(UnixDatagram.bind({ path, mode, loop: ctx.loop }), RangeError, `datagram mode ${String(mode)}`);
        }
        for (const Kind of [UnixListener, UnixDatagram]) {
          await assert.rejects(Kind.bind({ path: abstractName(), mode: 0o600, loop: ctx.loop }), (e) => e instanceof TypeError && /abstract/.test(e.message));
        }
        assertOnly(dir, []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  // Linux binds with mode at the path itself; elsewhere through a longer temporary name.
  const linux = process.platform === "linux";

  test(linux ? "bind({ mode }) works on a path of the longest length a socket address takes" : "bind({ mode }) on a path whose temporary name would be too long is a RangeError that says why", () =>
    ctx.run(async () => {
      const dir = freshDir();
      try {
        // The path itself fits (107 bytes at most); a temporary name beside it would not.
        const deep = join(dir, "d".repeat(Math.max(1, 104 - dir.length - 4)));
        mkdirSync(deep);
        const path = join(deep, "s.k");
        assert.ok(Buffer.byteLength(path) <= 107, "the test's path is meant to fit");
        if (linux) {
          const l = await UnixListener.bind({ path, mode: 0o600, loop: ctx.loop });
          assert.equal(permissions(path), 0o600);
          await l.close();
        } else {
          await assert.rejects(UnixListener.bind({ path, mode: 0o600, loop: ctx.loop }), (e) => e instanceof RangeError && /temporary|private directory/.test(e.message));
        }
        assertOnly(deep, []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  if (linux) {
    test("peers see a socket bound with mode by its path: a client's remoteAddress, a datagram's source", () =>
      ctx.run(async () => {
        const dir = freshDir();
        try {
          const path = join(dir, "l.sock");
          const l = await UnixListener.bind({ path, mode: 0o600, loop: ctx.loop });
          const [c, s] = await ctx.both(() => UnixStream.connect({ path, loop: ctx.loop, timeout: 5000 }), () => l.accept({ timeout: 5000 }));
          assert.deepEqual(c.remoteAddress, { family: "unix", path });
          assert.deepEqual(s.localAddress, { family: "unix", path });
          await c.close();
          await s.close();
          await l.close();
          const from = join(dir, "from.dgram");
          const to = join(dir, "to.dgram");
          const a = await UnixDatagram.bind({ path: from, mode: 0o600, loop: ctx.loop });
          const b = await UnixDatagram.bind({ path: to, loop: ctx.loop });
          try {
            await a.sendTo(bytes("hi"), { family: "unix", path: to }, { timeout: 5000 });
            const got = await b.receiveFrom(new Uint8Array(8), { timeout: 5000 });
            assert.deepEqual(got.address, { family: "unix", path: from }, "the reply address is the path");
          } finally {
            await a.close();
            await b.close();
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }));
  }

  test("bind({ mode }) in a directory that does not exist rejects with ENOENT", () =>
    ctx.run(async () => {
      const dir = freshDir();
      try {
        await assert.rejects(
          UnixListener.bind({ path: join(dir, "missing", "x.sock"), mode: 0o600, loop: ctx.loop }),
          (e) => e instanceof SystemError && e.code === "ENOENT",
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("peerCredentials() on a pair, a client and the stream a listener accepted is this process", () =>
    ctx.run(async () => {
      const me = { pid: process.pid, uid: process.getuid(), gid: process.getgid() };
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      try {
        assert.deepEqual(a.peerCredentials(), me);
        assert.deepEqual(b.peerCredentials(), me);
      } finally {
        await a.close();
        await b.close();
      }
      const l = await UnixListener.bind({ path: abstractName(), loop: ctx.loop });
      try {
        const [c, s] = await ctx.both(
          () => UnixStream.connect({ path: l.address.path, timeout: 5000, loop: ctx.loop }),
          () => l.accept({ timeout: 5000 }),
        );
        try {
          assert.deepEqual(s.peerCredentials(), me, "the server side sees the client");
          assert.deepEqual(c.peerCredentials(), me, "the client side sees the listener");
        } finally {
          await c.close();
          await s.close();
        }
        assert.throws(() => s.peerCredentials(), (e) => e instanceof SystemError && e.code === "EBADF");
      } finally {
        await l.close();
      }
    }));
});

/** Runs ES module `source` as `nobody`, in a child process of this runtime; resolves with its trimmed stdout. */
function runAsNobody(source) {
  return new Promise((resolve, reject) => {
    const [program, args] = evalCommand(source);
    const child = spawn(program, args, { uid: 65534, gid: 65534, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out.trim());
      else reject(new Error(`the child exited with ${code}: ${err}`));
    });
  });
}

/** A child's source that prints "ok" if it connects to `path`, else the error code. */
const connectScript = (path) => `
import { connect } from "node:net";
const s = connect(${JSON.stringify(path)});
s.on("connect", () => { console.log("ok"); s.destroy(); });
s.on("error", (e) => console.log(e.code));
`;

test("mode is enforced: another user cannot connect to a 0o600 socket and can to a 0o666 one", { skip: process.getuid?.() !== 0 && "needs root, to run a client as another user" }, async () => {
  // One loop, in the first mode under test: what is checked here is the kernel's, not the mode's.
  // In owner mode the body awaits a child process, host I/O that owner mode keeps going.
  const guest = MODES[0] === "guest";
  const loop = createLoop({ guest });
  const dir = freshDir();
  // The child must reach the sockets through the directory.
  chmodSync(dir, 0o755);
  const body = async () => {
    const closed = join(dir, "closed.sock");
    const open = join(dir, "open.sock");
    const a = await UnixListener.bind({ path: closed, mode: 0o600, loop });
    const b = await UnixListener.bind({ path: open, mode: 0o666, loop });
    try {
      assert.equal(await runAsNobody(connectScript(closed)), "EACCES");
      const accepting = b.accept({ timeout: 20_000 });
      assert.equal(await runAsNobody(connectScript(open)), "ok");
      const conn = await accepting;
      assert.equal(conn.peerCredentials().uid, 65534, "the accepted stream's peer is the other user");
      await conn.close();
    } finally {
      await a.close();
      await b.close();
    }
  };
  try {
    await (guest ? body() : runMain(body, { loop }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    loop.dispose();
  }
});
