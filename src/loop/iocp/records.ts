/**
 * What the IOCP backend records per operation and per socket, and the native records the
 * kernel holds while an operation is in flight.
 *
 * Each operation in the kernel owns one slot: `SLOT.size` bytes of native memory starting with
 * its OVERLAPPED, followed by what identifies it (the slot's number and a generation count) and
 * what the call needs to stay put until the packet arrives (WSABUF, byte and flag counters, the
 * socket address, the AFD poll block, AcceptEx's addresses). A completion packet hands back the
 * OVERLAPPED's address; {@link Records.opAt} turns it into the operation. Data goes through a
 * native staging buffer per slot, so the kernel never holds a pointer into JavaScript memory: a
 * receive lands there and is copied into the caller's buffer when its packet arrives, a send is
 * copied there when it starts.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { heapAlloc, heapFree } from "../../sys/windows/memory.js";
import { FdState, Operation } from "../operation.js";

/** Byte offsets within a slot. */
export const SLOT = {
  /** OVERLAPPED (32 bytes). An AFD poll uses its first 16 as the IO_STATUS_BLOCK. */
  overlapped: 0,
  /** u32: the slot's number. */
  index: 32,
  /** u32: how many operations have used the slot (checked against the operation's). */
  generation: 36,
  /** WSABUF (16 bytes). */
  wsabuf: 40,
  /** DWORD: bytes transferred by a call that completed at once. */
  bytes: 56,
  /** DWORD: WSARecv's flags, in and out. */
  flags: 60,
  /** SOCKADDR_STORAGE (128 bytes): a destination, or where a source address is written. */
  address: 64,
  /** INT: the length of `address`, in and out. */
  addressLength: 192,
  /** AFD_POLL_INFO with one handle (32 bytes). */
  poll: 200,
  /** AcceptEx's local and remote addresses, ACCEPT_ADDRESS bytes each. */
  accept: 232,
  size: 320,
} as const;

/** Space AcceptEx needs per address: the largest address (SOCKADDR_IN6, 28 bytes) plus 16. */
export const ACCEPT_ADDRESS = 44;

/** Slots per native allocation. */
const CHUNK = 64;

/** A stream transfer moves at most this much per call through its staging buffer. */
export const STAGE_MAX = 256 * 1024;

/** Staging buffers up to this size stay with their slot for the next operation. */
const STAGE_KEEP = 64 * 1024;

/** An operation on IOCP. */
export class IocpOp extends Operation {
  state: IocpFd | null = null;
  /** The slot it owns while the kernel holds it, else -1. */
  slot = -1;
  generation = 0;
  /** AcceptEx: the socket the connection is accepted into, until it is handed over; else -1. */
  accepted = -1;
  /** The bytes its staging buffer carries this time. */
  staged = 0;
}

/** What the IOCP backend keeps per socket or handle. */
export class IocpFd extends FdState<IocpOp> {
  /** Operations the kernel holds (their packets are due). */
  inflight = 0;
  /** Whether an immediate success posts no packet (skip-on-success mode is on). */
  skip = false;
  /**
   * Whether it is a socket (Winsock's calls) or another handle, a pipe or a file (ReadFile and
   * WriteFile for reads and writes; `overlapped` works on either). Told at association.
   */
  socket = true;
  /** For a handle that is not a socket: GetFileType's answer (FILE_TYPE_DISK, _PIPE, _CHAR). */
  fileType = 0;
  /** The base provider's handle AFD polls (SIO_BASE_HANDLE), once asked. */
  base = -1n;
  /** The listener's address family, for its AcceptEx sockets (0 until asked). */
  family = 0;
  /**
   * Bytes a stream read took from the kernel but could not deliver (its buffer was detached
   * while the read was in flight): the next read gets them first, so nothing is lost.
   */
  leftover: Uint8Array | null = null;
}

interface Chunk {
  readonly address: bigint;
  readonly view: DataView;
  readonly bytes: Uint8Array;
}

/** A native staging buffer. */
export interface Stage {
  readonly address: bigint;
  readonly bytes: Uint8Array;
}

/** The slots: native memory for operations in flight. */
export class Records {
  readonly #chunks: Chunk[] = [];
  readonly #ops: Array<IocpOp | null> = [];
  readonly #stages: Array<Stage | null> = [];
  readonly #free: number[] = [];
  readonly #byAddress = new Map<bigint, number>();
  #busy = 0;

  /** Slots in use. */
  get busy(): number {
    return this.#busy;
  }

  /** Gives `op` a zeroed slot stamped with its number and a new generation. */
  take(op: IocpOp): number {
    if (this.#free.length === 0) this.#grow();
    const slot = this.#free.pop()!;
    const { view, bytes, at } = this.#locate(slot);
    bytes.fill(0, at, at + SLOT.size);
    const generation = (view.getUint32(at + SLOT.generation, true) + 1) >>> 0;
    view.setUint32(at + SLOT.index, slot, true);
    view.setUint32(at + SLOT.generation, generation, true);
    this.#ops[slot] = op;
    op.slot = slot;
    op.generation = generation;
    this.#busy++;
    return slot;
  }

  /** Frees `op`'s slot (its packet is in, or none will come). */
  release(op: IocpOp): void {
    const slot = op.slot;
    if (slot < 0) return;
    op.slot = -1;
    this.#ops[slot] = null;
    const stage = this.#stages[slot];
    if (stage && stage.bytes.byteLength > STAGE_KEEP) {
      heapFree(stage.address);
      this.#stages[slot] = null;
    }
    // Keep the generation: the next take() increments it.
    this.#free.push(slot);
    this.#busy--;
  }

  /** The operation whose OVERLAPPED is at `overlapped`, if its slot is in use by it. */
  opAt(overlapped: bigint): IocpOp | null {
    const slot = this.#byAddress.get(overlapped);
    if (slot === undefined) return null;
    const op = this.#ops[slot] ?? null;
    if (op === null) return null;
    const { view, at } = this.#locate(slot);
    return view.getUint32(at + SLOT.generation, true) === op.generation ? op : null;
  }

  /** The native address of `slot`'s record (its OVERLAPPED). */
  address(slot: number): bigint {
    return this.#chunks[Math.floor(slot / CHUNK)]!.address + BigInt((slot % CHUNK) * SLOT.size);
  }

  /** A view of `slot`'s record: fields at `at + SLOT.x`. */
  view(slot: number): { readonly view: DataView; readonly bytes: Uint8Array; readonly at: number } {
    return this.#locate(slot);
  }

  /** `slot`'s staging buffer, at least `size` bytes (grown as needed). */
  stage(slot: number, size: number): Stage {
    let stage = this.#stages[slot];
    if (!stage || stage.bytes.byteLength < size) {
      if (stage) heapFree(stage.address);
      const length = Math.max(size, 4096);
      const address = heapAlloc(length);
      stage = { address, bytes: new Uint8Array(ffi.view(address, length)) };
      this.#stages[slot] = stage;
    }
    return stage;
  }

  /** Frees every native block (no slot may be in use). */
  free(): void {
    for (const stage of this.#stages) if (stage) heapFree(stage.address);
    for (const chunk of this.#chunks) heapFree(chunk.address);
    this.#stages.length = 0;
    this.#chunks.length = 0;
    this.#byAddress.clear();
  }

  #locate(slot: number): { view: DataView; bytes: Uint8Array; at: number } {
    const chunk = this.#chunks[Math.floor(slot / CHUNK)]!;
    return { view: chunk.view, bytes: chunk.bytes, at: (slot % CHUNK) * SLOT.size };
  }

  #grow(): void {
    const size = CHUNK * SLOT.size;
    // SAFETY: slots are native memory, never moved or freed while any is in use: the kernel
    // writes an operation's OVERLAPPED, counters and addresses until its packet is dequeued.
    const address = heapAlloc(size);
    const buffer = ffi.view(address, size);
    const first = this.#chunks.length * CHUNK;
    this.#chunks.push({ address, view: new DataView(buffer), bytes: new Uint8Array(buffer) });
    for (let i = CHUNK - 1; i >= 0; i--) {
      this.#free.push(first + i);
      this.#byAddress.set(address + BigInt(i * SLOT.size), first + i);
      this.#ops.push(null);
      this.#stages.push(null);
    }
  }
}
