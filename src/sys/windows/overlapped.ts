/**
 * Overlapped socket and file operations and AFD polls, started with pointers into native memory (the
 * operation's record: OVERLAPPED, WSABUF, counters, address) that the caller keeps alive until
 * the operation's packet arrives. Each returns {@link DONE} (it completed within the call),
 * {@link PENDING} (a packet will report it) or the Winsock/Win32 error code it failed with at
 * once (no packet will come).
 */
import { WIN } from "./constants.js";
import { windows } from "./api.js";
import { extensions } from "./api.js";

/** Completed within the call. */
export const DONE = 0;
/** In flight: its completion packet will report it. */
export const PENDING = -1;

/** Reads WSAGetLastError after a Winsock call that returned SOCKET_ERROR (or FALSE). */
function failed(): number {
  const code = windows().ws2.WSAGetLastError();
  return code === WIN.ERROR_IO_PENDING ? PENDING : code;
}

/** GetLastError after a Win32 call that returned FALSE: PENDING for ERROR_IO_PENDING. */
function failedWin32(): number {
  const code = windows().kernel32.GetLastError();
  return code === WIN.ERROR_IO_PENDING ? PENDING : code;
}

/** Overlapped ReadFile of `length` bytes into `buf` (a handle that is not a socket: a pipe). */
export function readFile(handle: number, buf: bigint, length: number, bytes: bigint, overlapped: bigint): number {
  return windows().kernel32.ReadFile(handle, buf, length, bytes, overlapped) !== 0 ? DONE : failedWin32();
}

/** Overlapped WriteFile of `length` bytes from `buf`. */
export function writeFile(handle: number, buf: bigint, length: number, bytes: bigint, overlapped: bigint): number {
  return windows().kernel32.WriteFile(handle, buf, length, bytes, overlapped) !== 0 ? DONE : failedWin32();
}

/** WSARecv into one WSABUF. */
export function recv(fd: number, wsabuf: bigint, bytes: bigint, flags: bigint, overlapped: bigint): number {
  return windows().ws2.WSARecv(fd, wsabuf, 1, bytes, flags, overlapped, 0n) === 0 ? DONE : failed();
}

/** WSASend of one WSABUF. */
export function send(fd: number, wsabuf: bigint, bytes: bigint, overlapped: bigint): number {
  return windows().ws2.WSASend(fd, wsabuf, 1, bytes, 0, overlapped, 0n) === 0 ? DONE : failed();
}

/** WSARecvFrom into one WSABUF, the source address into `from` (`fromLen` in/out). */
export function recvFrom(fd: number, wsabuf: bigint, bytes: bigint, flags: bigint, from: bigint, fromLen: bigint, overlapped: bigint): number {
  return windows().ws2.WSARecvFrom(fd, wsabuf, 1, bytes, flags, from, fromLen, overlapped, 0n) === 0 ? DONE : failed();
}

/** WSASendTo of one WSABUF to the address at `to`. */
export function sendTo(fd: number, wsabuf: bigint, bytes: bigint, to: bigint, toLen: number, overlapped: bigint): number {
  return windows().ws2.WSASendTo(fd, wsabuf, 1, bytes, 0, to, toLen, overlapped, 0n) === 0 ? DONE : failed();
}

/**
 * AcceptEx: accepts a connection of `listener` into the unbound socket `accepted`, the two
 * addresses into `buffer` (`addressSpace` bytes each, the address size plus 16), no data.
 */
export function acceptEx(listener: number, accepted: number, buffer: bigint, addressSpace: number, bytes: bigint, overlapped: bigint): number {
  return extensions(BigInt(listener)).AcceptEx(listener, accepted, buffer, 0, addressSpace, addressSpace, bytes, overlapped) ? DONE : failed();
}

/** ConnectEx to the address at `to` (the socket must be bound), sending nothing. */
export function connectEx(fd: number, to: bigint, toLen: number, overlapped: bigint): number {
  return extensions(BigInt(fd)).ConnectEx(fd, to, toLen, 0n, 0, 0n, overlapped) ? DONE : failed();
}

/**
 * IOCTL_AFD_POLL on the AFD device `afd`: `info` (an AFD_POLL_INFO) in and out; the packet's
 * lpOverlapped is `context`, and the kernel writes the status into the IO_STATUS_BLOCK `iosb`.
 * Returns DONE or PENDING (a packet comes either way: the AFD handle is not in skip mode), or
 * the Win32 error of an NTSTATUS that failed at once.
 */
export function afdPoll(afd: bigint, context: bigint, iosb: bigint, info: bigint, infoSize: number): number {
  const { ntdll } = windows();
  const status = ntdll.NtDeviceIoControlFile(afd, 0n, 0n, context, iosb, WIN.IOCTL_AFD_POLL, info, infoSize, info, infoSize);
  if (status === WIN.STATUS_PENDING || status === WIN.STATUS_SUCCESS) return PENDING;
  return ntdll.RtlNtStatusToDosError(status);
}

/** Cancels the AFD poll whose IO_STATUS_BLOCK is `iosb` (`scratch`: 16 bytes for the call's own). */
export function afdCancel(afd: bigint, iosb: bigint, scratch: bigint): void {
  windows().ntdll.NtCancelIoFileEx(afd, iosb, scratch);
}
