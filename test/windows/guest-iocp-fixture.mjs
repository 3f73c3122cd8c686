/**
 * Child process for guest-iocp.test.mjs: the IOCP loop in guest mode (createLoop() on node.exe's
 * main thread), on a Winsock listening socket with a node:net client. Prints JSON lines.
 *
 *   pending-read  a read waits for data the client sends 700 ms later (its timer unref'd): the
 *                 pending read must keep the process alive until then; then the process exits
 *                 with the loop and its sockets still open
 *   return        an idle loop whose helper thread is blocked; the script returns
 */
import { connect } from "node:net";
import { createLoop } from "evloop";
import { C } from "../../dist/sys/windows/constants.js";
import { bind, listen, localAddress, socket } from "../../dist/sys/windows/socket.js";

const scenario = process.argv[2];
const loop = createLoop();
const listener = socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
bind(listener, { family: "ipv4", address: "127.0.0.1", port: 0 });
listen(listener, 8);
const client = connect({ host: "127.0.0.1", port: localAddress(listener).port });
const fd = await loop.accept(listener);
client.unref();

if (scenario === "pending-read") {
  const started = Date.now();
  setTimeout(() => client.write("late"), 700).unref();
  const buf = new Uint8Array(16);
  const n = await loop.read(fd, buf);
  console.log(JSON.stringify({ scenario, mode: loop.mode, text: new TextDecoder().decode(buf.subarray(0, n)), waitedMs: Date.now() - started }));
} else if (scenario === "return") {
  await loop.sleep(10);
  console.log(JSON.stringify({ scenario, mode: loop.mode }));
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
