/**
 * `evloop soak` in its short form, as a child process: four seconds on every available backend
 * (EVLOOP_TEST_BACKENDS narrows them, as for the conformance suite), all at once, each in its own
 * process. Asserts what the soak itself judges (exit code 0: every byte verified, nothing stuck,
 * no unexpected error, fds back to the start and memory within its tolerance) and that each
 * backend did real work: operations in both driver modes, bytes verified, cancellations that
 * rejected. Never how fast: the counts depend on the machine, so only "more than zero" is
 * asserted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { testBackends } from "../helpers.mjs";
import { runCli } from "../run-cli.mjs";

/**
 * A bound for a hang only, above the soak's own bound on its children (it kills one that
 * overruns and reports it), so that the soak's report is what a failure shows.
 */
const TIMEOUT_MS = 170_000;

const dir = mkdtempSync(join(tmpdir(), "evloop-soak-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));


test("evloop soak --seconds 4 passes on every backend, with work done in guest and owner mode", { timeout: TIMEOUT_MS + 10_000 }, async (t) => {
  const backends = testBackends();
  if (backends.length === 0) return t.skip("no backend selected by EVLOOP_TEST_BACKENDS is available");
  const json = join(dir, "soak.json");
  const { code, stdout, stderr } = await runCli(["soak", "--seconds", "4", "--backends", backends.join(","), "--json", json], { timeoutMs: TIMEOUT_MS, killSignal: "SIGKILL" });
  const output = `${stdout}\n${stderr}`;
  assert.equal(code, 0, `evloop soak failed:\n${output}`);
  assert.match(stdout, /seed \d+/, "the seed is printed");
  const report = JSON.parse(readFileSync(json, "utf8"));
  assert.equal(report.ok, true);
  assert.deepEqual(report.backends.map((b) => b.backend), backends);
  for (const { backend, ok, result } of report.backends) {
    assert.ok(ok, `${backend} passed`);
    const c = result.counters;
    for (const mode of ["guest", "owner"]) assert.ok(c.opsByMode[mode] > 0, `${backend}: operations completed in ${mode} mode`);
    assert.ok(c.bytesVerified > 0, `${backend}: bytes verified`);
    assert.ok(c.connections > 0 && c.datagrams > 0 && c.fdsPassed > 0, `${backend}: streams, datagrams and passed fds all moved data`);
    assert.ok(c.aborted + c.timedOut > 0, `${backend}: some operation was cancelled`);
    assert.equal(c.unexpected, 0, `${backend}: no unexpected error`);
    assert.deepEqual(c.failures, [], `${backend}: no failure`);
    assert.equal(result.end.fds, result.start.fds, `${backend}: fds back to the start`);
    assert.match(stdout, new RegExp(`^${backend}: PASS$`, "m"), `${backend}'s summary says PASS`);
  }
});

test("evloop soak rejects a backend that is not available, before running anything", async () => {
  // iocp exists only on Windows; on Windows kqueue does not.
  const missing = process.platform === "win32" ? "kqueue" : "iocp";
  const { code, stderr } = await runCli(["soak", "--seconds", "1", "--backends", missing], { timeoutMs: TIMEOUT_MS, killSignal: "SIGKILL" });
  assert.equal(code, 2, stderr);
  assert.match(stderr, new RegExp(`${missing}.*not available`));
});
