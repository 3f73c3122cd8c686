/**
 * A Worker for driver-env.test.mjs: reports what the drivers see of this thread (its isolate,
 * its libuv loop's fd, whether guest mode is possible), opens a listening socket on 127.0.0.1
 * and, per workerData.mode, has it closed at the thread's exit ("hook"), adds and removes that
 * ("unhook"), or neither ("none"). It reports, then stays alive (workerData.stay) until
 * terminated, or returns.
 */
import { parentPort, workerData } from "node:worker_threads";
import { closeAtExit, fdsClosedAtExit, keepAtExit } from "../../dist/driver/cleanup.js";
import { currentIsolate, hostBackendFd, hostLoopAvailable } from "../../dist/driver/libuv.js";
import { C } from "../../dist/sys/windows/constants.js";
import { bind, listen, localAddress, socket } from "../../dist/sys/windows/socket.js";

const { mode, stay } = workerData;
const fd = socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
bind(fd, { family: "ipv4", address: "127.0.0.1", port: 0 });
listen(fd, 8);
if (mode === "hook" || mode === "unhook") closeAtExit(fd);
// Idempotent: a second add must not register a second hook (Node would abort the process).
if (mode === "hook") closeAtExit(fd);
const hookedBefore = fdsClosedAtExit();
if (mode === "unhook") keepAtExit(fd);
parentPort.postMessage({
  fd,
  port: localAddress(fd).port,
  hooked: fdsClosedAtExit(),
  hookedBefore,
  isolate: String(currentIsolate()),
  backendFd: hostBackendFd(),
  hostLoop: hostLoopAvailable(),
});
if (stay) setInterval(() => {}, 1000);
