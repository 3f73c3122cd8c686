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
export { Poll, Registry, Waker, type SelectorName } from "./selector/registry.js";
export type { WakerHandle } from "./sys/wakeup.js";
export {
  IoQueue,
  PrematureCloseError,
  WaitAbortedError,
  type IoEvent,
  type IoReport,
  type IoQueueOptions,
  type IoQueueRunOptions,
  type IoQueueStats,
} from "./threads/io-queue.js";
export { Reactor, type ReactorOptions } from "./threads/reactor.js";
export { Registrator } from "./threads/registrator.js";
export type { RegistratorHandle, RegistrationMode } from "./threads/shared.js";

export type { EventLoop, OperationOptions, BackendName, ReceiveFromResult, BorrowOptions, BorrowedBytes, OverlappedOptions, OverlappedResult } from "./loop/event-loop.js";
export { PollingEventLoop } from "./loop/polling.js";
export { IoUringEventLoop, type IoUringOptions } from "./loop/io-uring/loop.js";
export { probeIoUring, type IoUringProbe } from "./loop/io-uring/probe.js";
export { IocpEventLoop, type IocpOptions, type IocpStats } from "./loop/iocp/loop.js";
export { BlockingEventLoop } from "./loop/blocking.js";
export { availableBackends, probeBackends, type BackendProbe } from "./loop/backends.js";

export { createLoop, defaultLoop, runMain, type CreateLoopOptions, type Loop } from "./driver/create.js";

export { TcpListener, TcpStream, type TcpListenOptions, type TcpConnectOptions } from "./net/tcp.js";
export { UdpSocket, type UdpBindOptions, type UdpConnectOptions, type UdpTarget } from "./net/udp.js";
export {
  UnixListener,
  UnixStream,
  UnixDatagram,
  type UnixPathOptions,
  type UnixBindOptions,
  type UnixListenOptions,
  type UnixConnectOptions,
  type ReceivedFds,
  type PeerCredentials,
} from "./net/unix.js";
export { resolveHost, type InetAddress, type IPFamily, type ResolveOptions } from "./net/address.js";
export type { Datagram } from "./net/socket.js";
export { FileDescriptor, type FileDescriptorOptions } from "./io/fd.js";
export { Pipe } from "./io/pipe.js";
export { OverlappedHandle, type OverlappedHandleOptions } from "./io/overlapped.js";
export {
  NamedPipe,
  NamedPipeServer,
  type NamedPipeServerOptions,
  type NamedPipeConnectOptions,
  type MessageReadOptions,
} from "./io/named-pipe.js";
export type { HandleOptions } from "./io/handle.js";
export type { ChunkOptions } from "./io/stream.js";
export { spawnLoops, LoopThreadError, type LoopThreads, type SpawnLoopsOptions } from "./threads/loops.js";
export { loopThread, type LoopThread, type HandOff } from "./threads/loop-thread.js";
