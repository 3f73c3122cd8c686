/**
 * The socket waker, Windows' stand-in for a pipe (Windows has no pipe or eventfd that WSAPoll
 * can watch: it watches sockets only): a connected pair of loopback UDP sockets, both
 * non-blocking and not inheritable. The receiving end is the pollable fd; a wake sends a
 * one-byte datagram from the other end, which any thread may do.
 *
 * A full receive buffer (wake-ups nobody drained) makes the send would-block, which means
 * wake-ups are pending anyway, so it is not an error. A wake after the owner closed the waker
 * fails (the socket is gone), as a write to a closed pipe does.
 */
import type { FdWakerHandle, WakeupFd } from "../wakeup.js";
import { closeSocket, loopbackPair, receiveNow, sendNow, WOULD_BLOCK } from "./socket.js";

// Per-thread scratch: every thread (Worker) has its own instance of this module.
const ONE_BYTE = new Uint8Array([1]);
const drainBuf = new Uint8Array(16);

/** Wakes the socket waker whose sending end is `fd` (from any thread). */
export function socketWake(fd: number): void {
  sendNow(fd, ONE_BYTE);
}

class SocketWakeup implements WakeupFd {
  readonly fd: number;
  readonly handle: FdWakerHandle;
  readonly #sendFd: number;
  #closed = false;

  constructor() {
    const [receiver, sender] = loopbackPair("dgram");
    this.fd = receiver;
    this.#sendFd = sender;
    this.handle = { kind: "socket", fd: sender };
  }

  wake(): void {
    socketWake(this.#sendFd);
  }

  drain(): void {
    // One datagram per wake-up: read them all.
    while (receiveNow(this.fd, drainBuf) !== WOULD_BLOCK);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSocket(this.fd);
    closeSocket(this.#sendFd);
  }
}

/** A waker fd on a loopback UDP socket pair (see `../wakeup.ts`). */
export function socketWakeup(): WakeupFd {
  return new SocketWakeup();
}
