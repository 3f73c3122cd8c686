/**
 * evloop: a cross-platform I/O event loop that drives the kernel's selectors directly through
 * FFI. This module is the whole public API.
 *
 * @example
 * ```ts
 * import { TcpListener, TcpStream } from "evloop";
 * const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0 });
 * const client = await TcpStream.connect({ host: "127.0.0.1", port: listener.address.port });
 * const server = await listener.accept();
 * await client.writeAll(new TextEncoder().encode("hi"));
 * const buf = new Uint8Array(2);
 * await server.read(buf);
 * ```
 * @module
 */
export { SystemError, TimeoutError, ClosedError } from "./sys/errors.js";
export type { SocketAddress, IPv4Address, IPv6Address, UnixAddress } from "./sys/posix/sockaddr.js";
export type { ReceivedMessage } from "./sys/posix/socket.js";

export { Interest, Event, Events } from "./selector/event.js";
export { Poll, Registry, Waker, type WakerHandle, type SelectorName } from "./selector/poll-api.js";

export type { EventLoop, OperationOptions, BackendName, ReceiveFromResult } from "./loop/event-loop.js";
export { PollingEventLoop } from "./loop/polling.js";
export { BlockingEventLoop } from "./loop/blocking.js";
export { availableBackends, probeBackends, type BackendProbe } from "./loop/select.js";

export { createLoop, defaultLoop, runMain, type CreateLoopOptions, type Loop } from "./runtime/default.js";
