/**
 * The AFD device (`\Device\Afd`), the driver under Winsock: opening a handle to it lets a
 * program ask "tell me when this socket is readable/writable" with IOCTL_AFD_POLL, and get the
 * answer as a completion packet on a port. That is how readiness is bolted on completion, as in
 * mio and wepoll: `waitReadable`/`waitWritable` on IOCP.
 */
import { WIN, WIN_LAYOUT } from "./constants.js";
import { windows } from "./api.js";
import { ntError } from "./errors.js";
import { nativeBlock } from "./memory.js";
import { heapFree } from "./memory.js";

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
