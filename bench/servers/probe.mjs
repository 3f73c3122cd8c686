// Which of evloop's echo servers (evloop.mjs) this JavaScript runtime can run, for the benchmark
// suite, asked of evloop itself under that runtime, with the same permissions as the server:
//
//   bun bench/servers/probe.mjs
//   deno run --no-prompt --allow-ffi --allow-env=EVLOOP_* --allow-read=dist bench/servers/probe.mjs
//
// Prints one line, `PROBE {json}`, and exits 0:
//
//   {"runtime":"bun 1.4.5","backends":[{"name":"io_uring","available":true,
//     "modes":{"guest":"guest mode is not available on Bun: …","owner":null}}, …]}
//
// A backend's `reason` is probeBackends()'s when it is unavailable; for an available one, each
// mode is null when `createLoop({ backend, guest })` works here (the call evloop.mjs starts with)
// or the message of the error it throws. So a mode evloop gains on a runtime (guest mode on Bun
// and Deno) shows up as available without any change to the bench.
import { createLoop, probeBackends } from "evloop";

/** The runtime running this file, and its version. */
function runtime() {
  if (typeof Bun !== "undefined") return `bun ${Bun.version}`;
  if (typeof Deno !== "undefined") return `deno ${Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

/** Null when a loop on `backend` in that mode can be created here, else why not. */
function tryMode(backend, mode) {
  let loop;
  try {
    loop = createLoop({ backend, guest: mode === "guest" });
    return loop.mode === mode ? null : `createLoop({ guest: ${mode === "guest"} }) gave a loop in ${loop.mode} mode`;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    loop?.dispose();
  }
}

const backends = probeBackends().map(({ name, available, reason }) =>
  available
    ? { name, available, modes: { guest: tryMode(name, "guest"), owner: tryMode(name, "owner") } }
    : { name, available, reason: reason ?? "unavailable" },
);
process.stdout.write(`PROBE ${JSON.stringify({ runtime: runtime(), backends })}\n`);
// A guest loop's helper thread, once there is one, must not keep the probe alive.
process.exit(0);
