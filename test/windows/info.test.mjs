/**
 * `evloop info` under the Windows build of Node: it runs, names Windows' backends (iocp, then
 * blocking, which works there too), and reports no POSIX-only facts (a C library, a pipe or
 * eventfd waker, the Linux host's /proc under Wine).
 * Skipped elsewhere.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { release } from "node:os";
import { fileURLToPath } from "node:url";

const WINDOWS = process.platform === "win32";
const main = fileURLToPath(new URL("../../dist-tools/cli/main.js", import.meta.url));

function info(...args) {
  const r = spawnSync(process.execPath, [main, "info", ...args], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.error, undefined);
  return r;
}

describe("evloop info on Windows", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, () => {
  test("--json reports Windows' facts and backends", () => {
    const r = info("--json");
    const report = JSON.parse(r.stdout);
    assert.equal(report.platform, "win32");
    assert.equal(report.kernel, release());
    assert.match(report.libc, /^none: Windows, where evloop calls Winsock 2\.2/);
    assert.match(report.waker, /^socket: /);
    assert.deepEqual(report.backends.map((b) => b.name), ["iocp", "blocking"], "iocp, then blocking");
    const blocking = report.backends.find((b) => b.name === "blocking");
    assert.equal(blocking.available, true, `blocking is unavailable: ${blocking.reason}`);
    for (const b of report.backends) if (!b.available) assert.ok(b.reason, `${b.name} is unavailable without a reason`);
    // Exit code 1 exactly when no backend can be used, with the reason.
    if (report.defaultBackend === null) {
      assert.equal(r.status, 1);
      assert.ok(report.defaultError);
    } else {
      assert.equal(r.status, 0);
    }
  });

  test("the table prints without touching POSIX-only things", () => {
    const r = info();
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /^platform\s+win32 x64$/m);
    assert.match(r.stdout, /^libc\s+none: Windows/m);
    assert.doesNotMatch(r.stdout, /^waker\s+(pipe|eventfd)$/m);
  });
});
