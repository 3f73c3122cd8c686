/**
 * The AFD device (`\Device\Afd`), the driver under Winsock: opening a handle to it lets a
 * program ask "tell me when this socket is readable/writable" with IOCTL_AFD_POLL, and get the
 * answer as a completion packet on a port. That is how readiness is bolted on completion, as in
 * mio and wepoll: `waitReadable`/`waitWritable` on IOCP, and the readiness API's AFD selector
 * (`selector/afd.ts`), which polls through the poll records below.
 */
import { WIN, WIN_LAYOUT } from "./constants.js";
import { windows } from "./api.js";
import { ntError } from "./errors.js";
import { heapFree, nativeBlock } from "./memory.js";
import { afdPoll } from "./overlapped.js";

/** Opens a handle to the AFD device (synchronous access only: its polls are overlapped). */
export function openAfd(): bigint {
  const name = "\\Device\\Afd\\evloop";
  const us = WIN_LAYOUT.UNICODE_STRING;
  const oa = WIN_LAYOUT.OBJECT_ATTRIBUTES;
  // The name (UTF-16), its UNICODE_STRING, the OBJECT_ATTRIBUTES, the handle and the IOSB: all
  // read by NtCreateFile within the call, freed right after.
  const block = nativeBlock(2 * name.length + us.size + oa.size + 8 + 16);
  const v = block.view;
  for (let i = 0; i < name.length; i++) v.setUint16(2 * i, name.charCodeAt(i), true);
  const usAt = 2 * name.length;
  const oaAt = usAt + us.size;
  const handleAt = oaAt + oa.size;
  const iosbAt = handleAt + 8;
  v.setUint16(usAt + us.fields.length.offset, 2 * name.length, true);
  v.setUint16(usAt + us.fields.maximumLength.offset, 2 * name.length, true);
  v.setBigUint64(usAt + us.fields.buffer.offset, block.address, true);
  v.setUint32(oaAt + oa.fields.length.offset, oa.size, true);
  v.setBigUint64(oaAt + oa.fields.objectName.offset, block.address + BigInt(usAt), true);
  try {
    const status = windows().ntdll.NtCreateFile(
      block.address + BigInt(handleAt),
      WIN.SYNCHRONIZE,
      block.address + BigInt(oaAt),
      block.address + BigInt(iosbAt),
      0n,
      0,
      WIN.FILE_SHARE_READ | WIN.FILE_SHARE_WRITE,
      WIN.FILE_OPEN,
      0,
      0n,
      0,
    );
    if (status !== WIN.STATUS_SUCCESS) throw ntError(status, "NtCreateFile");
    return v.getBigUint64(handleAt, true);
  } finally {
    heapFree(block.address);
  }
}

/** Closes a handle from {@link openAfd}; every poll still in flight on it ends (cancelled). */
export function closeAfd(afd: bigint): void {
  windows().kernel32.CloseHandle(afd);
}

const IOSB = WIN_LAYOUT.IO_STATUS_BLOCK;
const INFO = WIN_LAYOUT.AFD_POLL_INFO;

/**
 * Bytes of one poll record in native memory: the IO_STATUS_BLOCK the kernel writes the status
 * into (its address is also the poll's context, the packet's lpOverlapped), then the
 * AFD_POLL_INFO for one socket, read and rewritten by the kernel.
 */
export const AFD_POLL_RECORD_SIZE = IOSB.size + INFO.size;

/**
 * Starts an IOCTL_AFD_POLL for the socket whose base handle is `base` and the AFD events
 * `events`, with the poll record at `record` (`view` seeing it at byte `at`). The caller keeps
 * the record alive until the poll's packet is dequeued. Returns PENDING (a packet will come) or
 * the Win32 error it failed with at once (none will).
 */
export function startAfdPoll(afd: bigint, record: bigint, view: DataView, at: number, base: bigint, events: number): number {
  const info = at + IOSB.size;
  view.setBigUint64(at + IOSB.fields.status.offset, 0n, true);
  view.setBigUint64(at + IOSB.fields.information.offset, 0n, true);
  view.setBigInt64(info + INFO.fields.timeout.offset, 0x7fffffffffffffffn, true); // INT64_MAX: no timeout
  view.setUint32(info + INFO.fields.count.offset, 1, true);
  view.setUint32(info + INFO.fields.exclusive.offset, 0, true);
  view.setBigUint64(info + INFO.fields.handle.offset, base, true);
  view.setUint32(info + INFO.fields.events.offset, events, true);
  view.setUint32(info + INFO.fields.status.offset, 0, true);
  return afdPoll(afd, record, record, record + BigInt(IOSB.size), INFO.size);
}

/**
 * The AFD events a poll whose packet reported success found (0 if it reported no socket). Read
 * it only after a successful packet: a cancelled poll does not rewrite its AFD_POLL_INFO.
 */
export function afdPollEvents(view: DataView, at: number): number {
  const info = at + IOSB.size;
  if (view.getUint32(info + INFO.fields.count.offset, true) < 1) return 0;
  return view.getUint32(info + INFO.fields.events.offset, true);
}
