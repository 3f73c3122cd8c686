/**
 * I/O completion ports: the kernel queue every overlapped operation of a loop reports to.
 *
 * A port is a HANDLE, not an fd. Each socket is associated with one port once, for its whole
 * life (Windows cannot undo it); its operations then post their completion packets there, each
 * carrying the OVERLAPPED the operation was started with. With skip-on-success mode
 * (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS) an operation that completes within its call posts no
 * packet; without it, even an immediate success posts one. Callers handle each exactly once.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { WIN, WIN_LAYOUT } from "./constants.js";
import { windows } from "./api.js";
import { lastError, winError } from "./errors.js";
import { heapAlloc, heapFree } from "./memory.js";

const E = WIN_LAYOUT.OVERLAPPED_ENTRY;

/** One dequeued completion packet. */
export interface Completion {
  readonly key: number;
  /** The OVERLAPPED the operation was started with (0n for a packet posted without one). */
  readonly overlapped: bigint;
  /** NTSTATUS of the operation (0: success). */
  readonly status: number;
  readonly bytes: number;
}

/** A view of `capacity` OVERLAPPED_ENTRY records in native memory at `entries`. */
export function entriesView(entries: bigint, capacity: number): DataView {
  return new DataView(ffi.view(entries, capacity * E.size));
}

/** Reads the first `count` OVERLAPPED_ENTRY records of `view` (from {@link entriesView}). */
export function readEntries(view: DataView, count: number, into: Completion[]): void {
  for (let i = 0; i < count; i++) {
    const at = i * E.size;
    into.push({
      key: Number(view.getBigUint64(at + E.fields.key.offset, true)),
      overlapped: view.getBigUint64(at + E.fields.overlapped.offset, true),
      status: view.getUint32(at + E.fields.internal.offset, true),
      bytes: view.getUint32(at + E.fields.bytes.offset, true),
    });
  }
}

/** A completion port with its own entry array for GetQueuedCompletionStatusEx. */
export class CompletionPort {
  readonly handle: bigint;
  readonly #entries: bigint;
  readonly #view: DataView;
  readonly #removed: Uint32Array = new Uint32Array(1);
  readonly #removedAddress = ffi.address(this.#removed);
  readonly capacity: number;
  #closed = false;

  /** A new port; `capacity` entries are dequeued per call at most. */
  constructor(capacity = 256) {
    const { kernel32 } = windows();
    // One thread runs the loop: a concurrency of 1 is what the port is for.
    const handle = kernel32.CreateIoCompletionPort(WIN.INVALID_HANDLE_VALUE, 0n, 0, 1);
    if (handle === 0n) throw lastError("CreateIoCompletionPort");
    this.handle = handle;
    this.capacity = capacity;
    // SAFETY: the kernel writes entries only inside GetQueuedCompletionStatusEx; the memory is
    // native and freed in close().
    this.#entries = heapAlloc(capacity * E.size);
    this.#view = entriesView(this.#entries, capacity);
  }

  /**
   * Associates `handle` (a socket) with the port, posting its packets with `key`. With `skip`,
   * asks for skip-on-success (which cannot be undone) and returns whether it is on; without it
   * only the handle's event is skipped, and every operation posts a packet.
   */
  associate(handle: number | bigint, key: number, skip = true): boolean {
    const { kernel32 } = windows();
    if (kernel32.CreateIoCompletionPort(handle, this.handle, key, 0) === 0n) throw lastError("CreateIoCompletionPort");
    const modes = skip ? WIN.FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | WIN.FILE_SKIP_SET_EVENT_ON_HANDLE : WIN.FILE_SKIP_SET_EVENT_ON_HANDLE;
    return kernel32.SetFileCompletionNotificationModes(handle, modes) !== 0 && skip;
  }

  /**
   * Dequeues up to `max` packets (at most `capacity`), waiting up to `timeout` ms (-1: forever,
   * 0: not at all), into `into`. Returns how many.
   */
  dequeue(timeout: number, into: Completion[], max = this.capacity): number {
    const { kernel32 } = windows();
    const ms = timeout < 0 ? WIN.INFINITE : Math.min(timeout, WIN.INFINITE - 1);
    const count = Math.max(1, Math.min(max, this.capacity));
    const ok = kernel32.GetQueuedCompletionStatusEx(this.handle, this.#entries, count, this.#removedAddress, ms, 0);
    if (!ok) {
      const code = kernel32.GetLastError();
      if (code === WIN.WAIT_TIMEOUT) return 0;
      throw winError(code, "GetQueuedCompletionStatusEx");
    }
    const n = this.#removed[0]!;
    readEntries(this.#view, n, into);
    return n;
  }

  /** Posts a packet with `key` and no OVERLAPPED (a wake-up). */
  post(key: number): void {
    postTo(this.handle, key);
  }

  /** Closes the port (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    windows().kernel32.CloseHandle(this.handle);
    heapFree(this.#entries);
  }
}

/** Posts a wake-up packet with `key` to the port `port` (any thread). */
export function postTo(port: number | bigint, key: number): void {
  const { kernel32 } = windows();
  if (!kernel32.PostQueuedCompletionStatus(port, 0, key, 0n)) throw lastError("PostQueuedCompletionStatus");
}

/**
 * CancelIoEx(handle, overlapped): asks the kernel to end one operation. False when there was
 * nothing to cancel (it completed already: its packet is on its way, or was handled).
 */
export function cancelIo(handle: number | bigint, overlapped: bigint): boolean {
  const { kernel32 } = windows();
  if (kernel32.CancelIoEx(handle, overlapped)) return true;
  const code = kernel32.GetLastError();
  if (code === WIN.ERROR_NOT_FOUND) return false;
  throw winError(code, "CancelIoEx");
}
