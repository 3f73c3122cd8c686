/**
 * io_uring(7): ring setup, the shared-memory queues, SQE/CQE codecs, the op probe and provided
 * buffer rings. Linux ≥ 5.6 for the network ops evloop needs; newer features are probed.
 *
 * How the rings work. `io_uring_setup(2)` returns an fd whose memory, mapped with mmap(2), holds
 * three arrays shared with the kernel:
 * - the submission queue (SQ) ring: a head, a tail and an array of indices into the SQE array;
 * - the SQE array: 64-byte submission entries, one per operation;
 * - the completion queue (CQ) ring: a head, a tail and 16-byte completion entries (CQEs).
 * We fill SQEs and publish them by advancing the SQ tail; the kernel consumes them (during
 * `io_uring_enter`) and advances the SQ head. The kernel writes CQEs and advances the CQ tail; we
 * read them and advance the CQ head. Each side publishes its index with a release store and reads
 * the other side's with an acquire load (`Atomics.store`/`Atomics.load`, which are sequentially
 * consistent and so at least that strong), so an entry is complete before its index is seen.
 *
 * The SQ index array is filled once with 0..n-1, so SQE slot `i` is always ring entry `i`, and a
 * slot is free again once the kernel's head has passed it (it copies SQEs at submission time,
 * `IORING_FEAT_SUBMIT_STABLE`).
 *
 * All of this memory is native (never a GC-managed buffer): JS reaches it through ArrayBuffers
 * over native memory (`ffi.view`), which the GC neither moves nor frees. Where the kernel allows
 * it (IORING_SETUP_NO_MMAP: Linux 6.5, rings over one page from 6.13) the memory is ours, mapped
 * anonymously and handed to io_uring_setup, instead of a mapping of the ring fd. Then nothing
 * but the fd holds the ring: closing it tears the ring down and cancels every request still in
 * it, which is what lets a Worker's cleanup hooks (`driver/cleanup.ts`, close(2) only) release
 * its sockets; a mapping of the ring fd would keep the ring, and the sockets its requests hold,
 * alive until the process exits.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { getField } from "../../ffi/layout.js";
import { call, SystemError } from "../errors.js";
import { libc } from "../libc.js";
import { linuxLibc } from "./libc.js";
import { close } from "../posix/fd.js";
import { C, IORING, IORING_NEWER, IORING_TESTING, LAYOUT } from "./constants.js";

const SQE = LAYOUT.io_uring_sqe;
const SQE_SIZE = SQE.size;
const CQE_SIZE = LAYOUT.io_uring_cqe.size;
const PARAMS = LAYOUT.io_uring_params;
const SQ_OFF = LAYOUT.io_sqring_offsets.fields;
const CQ_OFF = LAYOUT.io_cqring_offsets.fields;

// SQE field offsets in 32-bit words (every field the hot path writes is 4-byte aligned, except
// opcode/flags/ioprio in word 0 and buf_group/personality in word 10, written as one word).
const W_HEAD = 0; // opcode | flags << 8 | ioprio << 16
const W_FD = SQE.fields.fd.offset / 4;
const W_OFF = SQE.fields.off.offset / 4;
const W_ADDR = SQE.fields.addr.offset / 4;
const W_LEN = SQE.fields.len.offset / 4;
const W_OP_FLAGS = SQE.fields.opFlags.offset / 4;
const W_USER_DATA = SQE.fields.userData.offset / 4;
const W_BUF_GROUP = SQE.fields.bufGroup.offset / 4;
const W_FILE_INDEX = SQE.fields.fileIndex.offset / 4;
const W_ADDR3 = SQE.fields.addr3.offset / 4;
const SQE_WORDS = SQE_SIZE / 4;

/** Names of the `IORING_FEAT_*` bits, for `evloop info`. */
const FEATURE_NAMES: ReadonlyArray<readonly [number, string]> = [
  [C.IORING_FEAT_SINGLE_MMAP, "single_mmap"],
  [C.IORING_FEAT_NODROP, "nodrop"],
  [C.IORING_FEAT_SUBMIT_STABLE, "submit_stable"],
  [C.IORING_FEAT_RW_CUR_POS, "rw_cur_pos"],
  [C.IORING_FEAT_CUR_PERSONALITY, "cur_personality"],
  [C.IORING_FEAT_FAST_POLL, "fast_poll"],
  [C.IORING_FEAT_POLL_32BITS, "poll_32bits"],
  [C.IORING_FEAT_SQPOLL_NONFIXED, "sqpoll_nonfixed"],
  [C.IORING_FEAT_EXT_ARG, "ext_arg"],
  [C.IORING_FEAT_NATIVE_WORKERS, "native_workers"],
  [C.IORING_FEAT_RSRC_TAGS, "rsrc_tags"],
  [C.IORING_FEAT_CQE_SKIP, "cqe_skip"],
  [C.IORING_FEAT_LINKED_FILE, "linked_file"],
];

/** Names of the `IORING_SETUP_*` flags evloop may ask for, for `evloop info`. */
const SETUP_NAMES: ReadonlyArray<readonly [number, string]> = [
  [C.IORING_SETUP_CLAMP, "clamp"],
  [C.IORING_SETUP_CQSIZE, "cqsize"],
  [C.IORING_SETUP_SUBMIT_ALL, "submit_all"],
  [C.IORING_SETUP_COOP_TASKRUN, "coop_taskrun"],
  [C.IORING_SETUP_TASKRUN_FLAG, "taskrun_flag"],
  [IORING_NEWER.IORING_SETUP_NO_MMAP, "no_mmap"],
];

/** The names of the setup flags set in `flags`. */
export function setupNames(flags: number): string[] {
  return SETUP_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
}

/** The names of the feature bits set in `features`. */
export function featureNames(features: number): string[] {
  return FEATURE_NAMES.filter(([bit]) => (features & bit) !== 0).map(([, name]) => name);
}

/** The opcodes evloop uses, by name (for probe reports). */
export const OPS = {
  POLL_ADD: IORING.IORING_OP_POLL_ADD,
  SENDMSG: IORING.IORING_OP_SENDMSG,
  RECVMSG: IORING.IORING_OP_RECVMSG,
  TIMEOUT: IORING.IORING_OP_TIMEOUT,
  ACCEPT: IORING.IORING_OP_ACCEPT,
  ASYNC_CANCEL: IORING.IORING_OP_ASYNC_CANCEL,
  LINK_TIMEOUT: IORING.IORING_OP_LINK_TIMEOUT,
  CONNECT: IORING.IORING_OP_CONNECT,
  CLOSE: IORING.IORING_OP_CLOSE,
  READ: IORING.IORING_OP_READ,
  WRITE: IORING.IORING_OP_WRITE,
  SEND: IORING.IORING_OP_SEND,
  RECV: IORING.IORING_OP_RECV,
} as const;

/** The kernel release (`uname -r`), for the multishot decisions and `evloop info`. */
export function kernelRelease(): string {
  const U = LAYOUT.utsname;
  const buf = new Uint8Array(U.size);
  if (linuxLibc().uname(buf) !== 0) return "";
  const at = U.fields.release.offset;
  const field = buf.subarray(at, at + U.fields.release.length!);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

/** READ/WRITE's offset meaning "the file's current position" (-1 as a u64). */
const CURRENT_POSITION = -1;

/** Bytes of a struct __kernel_timespec. */
export const TIMESPEC_SIZE = 16;

/** Writes `ms` (≥ 0) as a struct __kernel_timespec at `offset` of `view`. */
export function writeTimespec(view: DataView, offset: number, ms: number): void {
  const ns = Math.max(0, Math.round(ms * 1e6));
  view.setBigInt64(offset, BigInt(Math.floor(ns / 1e9)), true);
  view.setBigInt64(offset + 8, BigInt(ns % 1e9), true);
}

/** The provided buffer a CQE names (its flags carry IORING_CQE_F_BUFFER), else -1. */
export function cqeBuffer(flags: number): number {
  return flags & C.IORING_CQE_F_BUFFER ? flags >>> IORING.IORING_CQE_BUFFER_SHIFT : -1;
}

/**
 * Where a CQE's fields are, in 32-bit words from {@link Ring.cqIndex} into {@link Ring.cqes}:
 * user_data (low and high word), res (signed) and flags.
 */
export const CQE_WORDS = { userLo: 0, userHi: 1, res: 2, flags: 3 } as const;

/** Whether a multishot request's CQE says more CQEs will follow (IORING_CQE_F_MORE). */
export function cqeMore(flags: number): boolean {
  return (flags & C.IORING_CQE_F_MORE) !== 0;
}

const addresses = new WeakMap<ArrayBufferLike, number>();

/**
 * A JS number for the address of a view's first byte (user-space addresses are below 2^53 on
 * every 64-bit ABI). The address of each ArrayBuffer is asked once and cached: backing stores
 * never move, and a transferred buffer is a new ArrayBuffer with its own entry.
 */
export function addressOf(view: ArrayBufferView): number {
  // SAFETY: `view.buffer` is read before the address is asked. On JavaScriptCore (Bun) a small
  // typed array keeps its bytes in its own GC cell until `.buffer` is first read, which moves
  // them into the ArrayBuffer's backing store; from then on they stay there (ffi/runtime/bun.ts).
  const buffer = view.buffer;
  let base = addresses.get(buffer);
  if (base === undefined) {
    base = Number(ffi.address(view)) - view.byteOffset;
    addresses.set(buffer, base);
  }
  return base + view.byteOffset;
}

function mmap(length: number, prot: number, flags: number, fd: number, offset: number, what: string): bigint {
  const p = libc.mmap(0n, length, prot, flags, fd, offset);
  // MAP_FAILED is (void *)-1.
  if (p === -1n || p === 0xffff_ffff_ffff_ffffn) throw new SystemError(ffi.errno(), "mmap", what);
  return p;
}

/** Memory of our own for the rings (IORING_SETUP_NO_MMAP): the SQE array, and both rings. */
interface RingMemory {
  readonly sqes: bigint;
  readonly sqesSize: number;
  readonly rings: bigint;
  readonly ringsSize: number;
}

const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * Maps anonymous memory at least as large as the kernel will use for `options`' rings: it
 * rounds the entries up to powers of two (io_uring_setup(2)), clamped to 32768 SQ and 65536 CQ
 * entries (IORING_SETUP_CLAMP); the rings' region is its header (struct io_rings, well under a
 * page), the CQEs, and the SQ index array.
 */
function allocateRings(options: RingOptions): RingMemory {
  const sqEntries = pow2(Math.min(options.entries, 32768));
  const cqEntries = options.cqEntries !== undefined ? pow2(Math.min(options.cqEntries, 65536)) : 2 * sqEntries;
  const page = 4096;
  const round = (n: number): number => Math.ceil(n / page) * page;
  const sqesSize = round(sqEntries * SQE_SIZE);
  const ringsSize = round(page + cqEntries * CQE_SIZE + 64 + sqEntries * 4);
  const prot = C.PROT_READ | C.PROT_WRITE;
  const flags = C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_POPULATE;
  const sqes = mmap(sqesSize, prot, flags, -1, 0, "io_uring SQEs");
  let rings: bigint;
  try {
    rings = mmap(ringsSize, prot, flags, -1, 0, "io_uring rings");
  } catch (e) {
    libc.munmap(sqes, sqesSize);
    throw e;
  }
  return { sqes, sqesSize, rings, ringsSize };
}

/** Options for {@link Ring.setup}. */
export interface RingOptions {
  /** SQ entries (rounded up to a power of two by the kernel). */
  readonly entries: number;
  /** CQ entries; default twice the SQ. */
  readonly cqEntries?: number;
}

/**
 * One io_uring instance: the ring fd and its three mappings. The hot-path members are public
 * typed arrays so the loop can fill SQEs and read CQEs without a call per field.
 */
export class Ring {
  readonly fd: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  /** `IORING_FEAT_*` bits the kernel reported. */
  readonly features: number;
  /** Setup flags the ring was created with. */
  readonly setupFlags: number;

  /** The SQE array as 32-bit words (an SQE is {@link SQE_WORDS} words). */
  readonly sqes: Uint32Array;
  /** The CQ ring's CQE array as 32-bit words (signed, for `res`): 4 words per CQE. */
  readonly cqes: Int32Array;
  readonly #sqRing: Uint32Array;
  readonly #cqRing: Uint32Array;
  readonly #sqHead: number;
  readonly #sqTail: number;
  readonly #sqFlags: number;
  readonly #cqHead: number;
  readonly #cqTail: number;
  readonly #sqMask: number;
  readonly #cqMask: number;
  /** Our SQ tail: SQEs filled but not yet published to the kernel. */
  #tail = 0;
  /** The tail the kernel has seen (published). */
  #published = 0;
  /** The SQ head as last read: the kernel only moves it forward, so it bounds the space. */
  #headSeen = 0;
  /** The CQ head we have consumed up to (published by {@link advance}). */
  #cqHeadLocal = 0;
  readonly #maps: Array<[bigint, number]> = [];
  #closed = false;

  private constructor(fd: number, params: DataView, own: RingMemory | null) {
    this.fd = fd;
    const sq = (f: { offset: number }) => params.getUint32(PARAMS.fields.sqOff.offset + f.offset, true);
    const cq = (f: { offset: number }) => params.getUint32(PARAMS.fields.cqOff.offset + f.offset, true);
    this.sqEntries = Number(getField(params, 0, PARAMS.fields.sqEntries));
    this.cqEntries = Number(getField(params, 0, PARAMS.fields.cqEntries));
    this.features = Number(getField(params, 0, PARAMS.fields.features));
    this.setupFlags = Number(getField(params, 0, PARAMS.fields.flags));
    try {
      const sqSize = sq(SQ_OFF.array) + this.sqEntries * 4;
      const cqSize = cq(CQ_OFF.cqes) + this.cqEntries * CQE_SIZE;
      const prot = C.PROT_READ | C.PROT_WRITE;
      const flags = C.MAP_SHARED | C.MAP_POPULATE;
      let sqPtr: bigint;
      let cqPtr: bigint;
      let sqesPtr: bigint;
      const sqesSize = this.sqEntries * SQE_SIZE;
      if (own !== null) {
        // Our memory (IORING_SETUP_NO_MMAP): both rings in one region, the SQEs in another.
        sqPtr = cqPtr = own.rings;
        sqesPtr = own.sqes;
        this.#maps.push([own.rings, own.ringsSize], [own.sqes, own.sqesSize]);
      } else if (this.features & C.IORING_FEAT_SINGLE_MMAP) {
        // One mapping holds both rings (Linux 5.4+).
        const size = Math.max(sqSize, cqSize);
        sqPtr = cqPtr = mmap(size, prot, flags, fd, C.IORING_OFF_SQ_RING, "io_uring rings");
        this.#maps.push([sqPtr, size]);
      } else {
        sqPtr = mmap(sqSize, prot, flags, fd, C.IORING_OFF_SQ_RING, "io_uring SQ ring");
        this.#maps.push([sqPtr, sqSize]);
        cqPtr = mmap(cqSize, prot, flags, fd, C.IORING_OFF_CQ_RING, "io_uring CQ ring");
        this.#maps.push([cqPtr, cqSize]);
      }
      if (own === null) {
        sqesPtr = mmap(sqesSize, prot, flags, fd, C.IORING_OFF_SQES, "io_uring SQEs");
        this.#maps.push([sqesPtr, sqesSize]);
      }

      // SAFETY: these ArrayBuffers alias the rings' memory (the kernel's mappings of the ring
      // fd, or our own pages the kernel pinned at setup), which lives until `close()` unmaps
      // it; nothing reads them after that (`#closed`).
      this.#sqRing = new Uint32Array(ffi.view(sqPtr, sqSize));
      this.#cqRing = new Uint32Array(ffi.view(cqPtr, cqSize));
      this.sqes = new Uint32Array(ffi.view(sqesPtr!, sqesSize));
      this.cqes = new Int32Array(ffi.view(cqPtr, cqSize), cq(CQ_OFF.cqes), this.cqEntries * (CQE_SIZE / 4));
      this.#sqHead = sq(SQ_OFF.head) / 4;
      this.#sqTail = sq(SQ_OFF.tail) / 4;
      this.#sqFlags = sq(SQ_OFF.flags) / 4;
      this.#sqMask = this.#sqRing[sq(SQ_OFF.ringMask) / 4]!;
      this.#cqHead = cq(CQ_OFF.head) / 4;
      this.#cqTail = cq(CQ_OFF.tail) / 4;
      this.#cqMask = this.#cqRing[cq(CQ_OFF.ringMask) / 4]!;
      const array = sq(SQ_OFF.array) / 4;
      for (let i = 0; i < this.sqEntries; i++) this.#sqRing[array + i] = i;
      this.#tail = this.#published = Atomics.load(this.#sqRing, this.#sqTail);
      this.#cqHeadLocal = Atomics.load(this.#cqRing, this.#cqHead);
    } catch (e) {
      this.#unmap();
      close(fd);
      throw e;
    }
  }

  /**
   * io_uring_setup(2) and the mappings. Throws SystemError naming `io_uring_setup` when the
   * kernel refuses (ENOSYS: no io_uring; EPERM: `kernel.io_uring_disabled` or seccomp).
   */
  static setup(options: RingOptions): Ring {
    const base = C.IORING_SETUP_CLAMP | (options.cqEntries !== undefined ? C.IORING_SETUP_CQSIZE : 0);
    // Newest first; a kernel that does not know a flag answers EINVAL and the next set is tried.
    // - COOP_TASKRUN (5.19): completions wait for our next kernel entry instead of interrupting
    //   the thread with an IPI while it runs JavaScript (a third more echo throughput here);
    //   TASKRUN_FLAG makes the kernel say so in the SQ flags, and `needsEnter` honours it. A
    //   thread asleep in the host's epoll_wait is still woken: task work sets a signal-like flag.
    // - SUBMIT_ALL (5.18): keep submitting the rest of a batch when one SQE fails to prepare.
    const attempts = [
      base | C.IORING_SETUP_SUBMIT_ALL | C.IORING_SETUP_COOP_TASKRUN | C.IORING_SETUP_TASKRUN_FLAG,
      base | C.IORING_SETUP_SUBMIT_ALL,
      base,
    ];
    // - NO_MMAP (6.5; 6.13 for rings over a page) first, with each set: see the file's comment.
    //   A kernel that refuses it answers EINVAL too, and the rings are mapped from the fd.
    const noMmap = IORING_NEWER.IORING_SETUP_NO_MMAP;
    let own: RingMemory | null = allocateRings(options);
    try {
      for (const flags of [...attempts.map((f) => f | noMmap), ...attempts]) {
        const mine = (flags & noMmap) !== 0;
        const params = new DataView(new ArrayBuffer(PARAMS.size));
        params.setUint32(PARAMS.fields.flags.offset, flags, true);
        if (options.cqEntries !== undefined) params.setUint32(PARAMS.fields.cqEntries.offset, options.cqEntries, true);
        if (mine) {
          // SAFETY: the kernel pins these pages at setup and holds them until the ring is torn
          // down; we unmap our view of them only in `close()`, after the last use.
          params.setBigUint64(PARAMS.fields.sqOff.offset + IORING_NEWER.OFF_USER_ADDR, own!.sqes, true);
          params.setBigUint64(PARAMS.fields.cqOff.offset + IORING_NEWER.OFF_USER_ADDR, own!.rings, true);
        }
        const r = linuxLibc().io_uring_setup(C.SYS_io_uring_setup, options.entries, params);
        if (r >= 0) {
          // The ring owns the memory from here (and unmaps it itself if it fails).
          const given = mine ? own : null;
          if (mine) own = null;
          return new Ring(r, params, given);
        }
        const errno = ffi.errno();
        if (errno !== 22 /* EINVAL */ || flags === attempts[attempts.length - 1]) throw new SystemError(errno, "io_uring_setup");
      }
      throw new SystemError(22, "io_uring_setup");
    } finally {
      if (own !== null) {
        libc.munmap(own.sqes, own.sqesSize);
        libc.munmap(own.rings, own.ringsSize);
      }
    }
  }

  /** Whether the kernel has every feature bit in `bits`. */
  has(bits: number): boolean {
    return (this.features & bits) === bits;
  }

  /** SQEs filled and not yet published. */
  get unpublished(): number {
    return (this.#tail - this.#published) >>> 0;
  }

  /** Free SQ slots (ours, counting unpublished ones as used). */
  get sqSpace(): number {
    this.#headSeen = Atomics.load(this.#sqRing, this.#sqHead);
    return this.sqEntries - ((this.#tail - this.#headSeen) >>> 0);
  }

  /**
   * Whether `n` SQEs can be claimed now. Reads the kernel's head only when the head last seen
   * leaves too little room: one atomic load per ring's worth of SQEs, not one per SQE.
   */
  hasSpace(n: number): boolean {
    return this.sqEntries - ((this.#tail - this.#headSeen) >>> 0) >= n || this.sqSpace >= n;
  }

  /**
   * Claims the next SQE and returns its first word's index in {@link sqes}; -1 when the SQ is
   * full (submit, then retry). The entry holds stale words until {@link prep} writes them all.
   */
  claim(): number {
    if (!this.hasSpace(1)) return -1;
    const at = (this.#tail & this.#sqMask) * SQE_WORDS;
    this.#tail = (this.#tail + 1) >>> 0;
    return at;
  }

  /**
   * Writes the whole SQE at word `at` (from {@link claim}): the common fields from the arguments,
   * every other word zero (the setters below fill some of them afterwards). `addr` and `off` are
   * numbers below 2^53; `userData` is split into two 32-bit words.
   */
  prep(at: number, opcode: number, flags: number, fd: number, addr: number, len: number, off: number, opFlags: number, userLo: number, userHi: number): void {
    const s = this.sqes;
    // The first 40 bytes are the fields below; after them come buf_index/personality,
    // splice_fd_in/file_index, addr3 and the pad.
    for (let w = W_USER_DATA + 2; w < SQE_WORDS; w++) s[at + w] = 0;
    s[at + W_HEAD] = opcode | (flags << 8);
    s[at + W_FD] = fd;
    s[at + W_OFF] = off >>> 0;
    s[at + W_OFF + 1] = Math.floor(off / 0x1_0000_0000);
    s[at + W_ADDR] = addr >>> 0;
    s[at + W_ADDR + 1] = Math.floor(addr / 0x1_0000_0000);
    s[at + W_LEN] = len;
    s[at + W_OP_FLAGS] = opFlags;
    s[at + W_USER_DATA] = userLo;
    s[at + W_USER_DATA + 1] = userHi;
  }

  /** Sets the buffer group (`IOSQE_BUFFER_SELECT`) of the SQE at word `at`. */
  setBufGroup(at: number, group: number): void {
    this.sqes[at + W_BUF_GROUP] = group & 0xffff;
  }

  /** Sets the `ioprio` field (the per-op flags of accept/recv multishot) of the SQE at `at`. */
  setIoprio(at: number, ioprio: number): void {
    this.sqes[at + W_HEAD] = (this.sqes[at + W_HEAD]! & 0xffff) | (ioprio << 16);
  }

  /** Sets `file_index`/`addr_len` and `addr3` (unused by evloop today; kept for completeness). */
  setExtra(at: number, fileIndex: number, addr3: number): void {
    this.sqes[at + W_FILE_INDEX] = fileIndex;
    this.sqes[at + W_ADDR3] = addr3 >>> 0;
    this.sqes[at + W_ADDR3 + 1] = Math.floor(addr3 / 0x1_0000_0000);
  }

  // ---- named preparations (liburing's io_uring_prep_*) -------------------------------------
  // Each writes a whole SQE at word `at` (from {@link claim}). `flags` are IOSQE_* flags; the
  // 64-bit user_data is given as two 32-bit words, `dataLo` and `dataHi`.

  /** READ of `len` bytes into `addr` at the file's current position; `rwFlags` are RWF_*. */
  prepRead(at: number, flags: number, fd: number, addr: number, len: number, rwFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_READ, flags, fd, addr, len, CURRENT_POSITION, rwFlags, dataLo, dataHi);
  }

  /** WRITE of `len` bytes from `addr` at the file's current position; `rwFlags` are RWF_*. */
  prepWrite(at: number, flags: number, fd: number, addr: number, len: number, rwFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_WRITE, flags, fd, addr, len, CURRENT_POSITION, rwFlags, dataLo, dataHi);
  }

  /** RECV of up to `len` bytes into `addr`; `msgFlags` are MSG_*. */
  prepRecv(at: number, flags: number, fd: number, addr: number, len: number, msgFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_RECV, flags, fd, addr, len, 0, msgFlags, dataLo, dataHi);
  }

  /** SEND of `len` bytes from `addr`; `msgFlags` are MSG_*. */
  prepSend(at: number, flags: number, fd: number, addr: number, len: number, msgFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_SEND, flags, fd, addr, len, 0, msgFlags, dataLo, dataHi);
  }

  /**
   * A receive of up to `len` bytes (0: the buffer's size) into a buffer the kernel picks from
   * provided-buffer group `group` when data arrives: RECV on a socket, READ at the current
   * position otherwise. `multishot` (sockets only) keeps it producing a CQE per buffer filled.
   */
  prepReceiveProvided(at: number, flags: number, fd: number, len: number, group: number, socket: boolean, multishot: boolean, dataLo: number, dataHi: number): void {
    const op = socket ? IORING.IORING_OP_RECV : IORING.IORING_OP_READ;
    this.prep(at, op, flags | C.IOSQE_BUFFER_SELECT, fd, 0, len, socket ? 0 : CURRENT_POSITION, 0, dataLo, dataHi);
    this.setBufGroup(at, group);
    if (multishot) this.setIoprio(at, C.IORING_RECV_MULTISHOT);
  }

  /** ACCEPT of a non-blocking, close-on-exec connection; `multishot` keeps accepting (5.19). */
  prepAccept(at: number, flags: number, fd: number, multishot: boolean, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_ACCEPT, flags, fd, 0, 0, 0, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, dataLo, dataHi);
    if (multishot) this.setIoprio(at, C.IORING_ACCEPT_MULTISHOT);
  }

  /** CONNECT to the sockaddr of `addrLen` bytes at `addr` (the length goes in `off`). */
  prepConnect(at: number, flags: number, fd: number, addr: number, addrLen: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_CONNECT, flags, fd, addr, 0, addrLen, 0, dataLo, dataHi);
  }

  /** SENDMSG of the msghdr at `msghdr`; `msgFlags` are MSG_*. */
  prepSendmsg(at: number, flags: number, fd: number, msghdr: number, msgFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_SENDMSG, flags, fd, msghdr, 1, 0, msgFlags, dataLo, dataHi);
  }

  /** RECVMSG into the msghdr at `msghdr`; `msgFlags` are MSG_*. */
  prepRecvmsg(at: number, flags: number, fd: number, msghdr: number, msgFlags: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_RECVMSG, flags, fd, msghdr, 1, 0, msgFlags, dataLo, dataHi);
  }

  /** One-shot POLL_ADD for the poll(2) `events` mask; the CQE's res is the revents. */
  prepPollAdd(at: number, flags: number, fd: number, events: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_POLL_ADD, flags, fd, 0, 0, 0, events, dataLo, dataHi);
  }

  /** CLOSE of `fd`. */
  prepClose(at: number, fd: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_CLOSE, 0, fd, 0, 0, 0, 0, dataLo, dataHi);
  }

  /** ASYNC_CANCEL of the request whose user_data is (`targetLo`, `targetHi`). */
  prepCancel(at: number, targetLo: number, targetHi: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_ASYNC_CANCEL, 0, -1, targetHi * 0x1_0000_0000 + targetLo, 0, 0, 0, dataLo, dataHi);
  }

  /** LINK_TIMEOUT for the SQE before it (which carries IOSQE_IO_LINK); `timespec` is its address. */
  prepLinkTimeout(at: number, timespec: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_LINK_TIMEOUT, 0, -1, timespec, 1, 0, 0, dataLo, dataHi);
  }

  /** TIMEOUT after the relative `timespec` (at that address). */
  prepTimeout(at: number, timespec: number, dataLo: number, dataHi: number): void {
    this.prep(at, IORING.IORING_OP_TIMEOUT, 0, -1, timespec, 1, 0, 0, dataLo, dataHi);
  }

  /** Publishes the filled SQEs to the kernel; returns how many are waiting to be submitted. */
  publish(): number {
    if (this.#tail !== this.#published) {
      Atomics.store(this.#sqRing, this.#sqTail, this.#tail);
      this.#published = this.#tail;
    }
    return (this.#tail - Atomics.load(this.#sqRing, this.#sqHead)) >>> 0;
  }

  // ---- the fault-injection seam (`sys/faults.ts`, tests only) ------------------------------

  /** The word index in {@link sqes} of the `i`-th SQE filled but not yet published. */
  unpublishedAt(i: number): number {
    return ((this.#published + i) & this.#sqMask) * SQE_WORDS;
  }

  /** The user_data of the SQE at word `at`, as its two 32-bit words: [low, high]. */
  sqeUserData(at: number): [number, number] {
    return [this.sqes[at + W_USER_DATA]!, this.sqes[at + W_USER_DATA + 1]!];
  }

  /**
   * Whether `len` of the SQE at `at` bounds the bytes it moves: a one-shot READ, WRITE, RECV or
   * SEND (a multishot RECV takes whole provided buffers).
   */
  sqeHasLength(at: number): boolean {
    const head = this.sqes[at + W_HEAD]!;
    const opcode = head & 0xff;
    const oneShot = ((head >>> 16) & C.IORING_RECV_MULTISHOT) === 0 || opcode !== IORING.IORING_OP_RECV;
    return oneShot && (opcode === IORING.IORING_OP_READ || opcode === IORING.IORING_OP_WRITE || opcode === IORING.IORING_OP_RECV || opcode === IORING.IORING_OP_SEND);
  }

  /** Caps the byte count of the SQE at `at` (see {@link sqeHasLength}); 0 there means "a whole provided buffer". */
  limitLength(at: number, max: number): void {
    const len = this.sqes[at + W_LEN]!;
    if (len === 0 || len > max) this.sqes[at + W_LEN] = max;
  }

  /**
   * Rewrites the SQE at `at` as a NOP that completes with `res` (IORING_NOP_INJECT_RESULT, Linux
   * 6.10+), keeping its user_data and its link to a LINK_TIMEOUT: the kernel does nothing and
   * posts the CQE the operation would have got had it failed with `res`.
   */
  injectResult(at: number, res: number): void {
    const link = (this.sqes[at + W_HEAD]! >>> 8) & C.IOSQE_IO_LINK;
    const [lo, hi] = this.sqeUserData(at);
    this.prep(at, IORING.IORING_OP_NOP, link, -1, 0, res >>> 0, 0, IORING_TESTING.IORING_NOP_INJECT_RESULT, lo, hi);
  }

  /**
   * io_uring_enter(2): submits `toSubmit` published SQEs and, with `wait`, blocks until
   * `minComplete` CQEs are available. Returns the number submitted, or -errno (EINTR, EBUSY,
   * EAGAIN are the caller's to handle; anything else is thrown).
   */
  enter(toSubmit: number, minComplete: number, wait: boolean): number {
    const flags = wait || this.needsEnter() ? C.IORING_ENTER_GETEVENTS : 0;
    const r = linuxLibc().io_uring_enter(C.SYS_io_uring_enter, this.fd, toSubmit, minComplete, flags, null, 0);
    if (r >= 0) return r;
    const errno = ffi.errno();
    // EINTR: a signal; EBUSY/EAGAIN: the CQ is overflowing or the kernel is short of memory —
    // reap and retry. The caller decides.
    if (errno === 4 || errno === 16 || errno === 11) return -errno;
    throw new SystemError(errno, "io_uring_enter");
  }

  /** Whether the kernel has completions it could not post (CQ overflow) or task work pending. */
  needsEnter(): boolean {
    return (Atomics.load(this.#sqRing, this.#sqFlags) & (C.IORING_SQ_CQ_OVERFLOW | C.IORING_SQ_TASKRUN)) !== 0;
  }

  /** CQEs available to read, starting at {@link cqIndex}(0). */
  cqReady(): number {
    return (Atomics.load(this.#cqRing, this.#cqTail) - this.#cqHeadLocal) >>> 0;
  }

  /** The word index in {@link cqes} of the `i`-th available CQE (res at +2, flags at +3). */
  cqIndex(i: number): number {
    return ((this.#cqHeadLocal + i) & this.#cqMask) * (CQE_SIZE / 4);
  }

  /** Marks `n` CQEs consumed; {@link release} hands their slots back to the kernel. */
  advance(n: number): void {
    this.#cqHeadLocal = (this.#cqHeadLocal + n) >>> 0;
  }

  /** Publishes the CQ head: the consumed CQEs' slots are the kernel's again. */
  release(): void {
    Atomics.store(this.#cqRing, this.#cqHead, this.#cqHeadLocal);
  }

  /** io_uring_register(2). Returns the result; throws SystemError on failure. */
  register(opcode: number, arg: ArrayBufferView | null, nrArgs: number, what: string): number {
    return call(`io_uring_register(${what})`, false, linuxLibc().io_uring_register, C.SYS_io_uring_register, this.fd, opcode, arg, nrArgs);
  }

  /**
   * IORING_REGISTER_PROBE (5.6): the set of supported opcodes. A kernel without the probe
   * (before 5.6) has none of the network ops evloop needs, so the error is the caller's answer.
   */
  probe(): Set<number> {
    const count = 256;
    const buf = new Uint8Array(LAYOUT.io_uring_probe.size + count * LAYOUT.io_uring_probe_op.size);
    this.register(IORING.IORING_REGISTER_PROBE, buf, count, "probe");
    const view = new DataView(buf.buffer);
    const len = Number(getField(view, 0, LAYOUT.io_uring_probe.fields.opsLen));
    const ops = new Set<number>();
    const OP = LAYOUT.io_uring_probe_op;
    for (let i = 0; i < len; i++) {
      const base = LAYOUT.io_uring_probe.size + i * OP.size;
      if (Number(getField(view, base, OP.fields.flags)) & C.IO_URING_OP_SUPPORTED) ops.add(Number(getField(view, base, OP.fields.op)));
    }
    return ops;
  }

  /** Unmaps the rings and closes the ring fd (the kernel cancels whatever is still in flight). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unmap();
    close(this.fd);
  }

  #unmap(): void {
    for (const [p, size] of this.#maps.splice(0)) libc.munmap(p, size);
  }
}

const BUF = LAYOUT.io_uring_buf;

/**
 * A provided buffer ring (IORING_REGISTER_PBUF_RING, 5.19): `count` buffers of `size` bytes in
 * native memory that the kernel picks from for `IOSQE_BUFFER_SELECT` receives. A CQE names the
 * buffer it filled (`flags >> IORING_CQE_BUFFER_SHIFT`); the loop reads it through {@link view}
 * and gives it back with {@link recycle} once consumed.
 */
export class BufferRing {
  readonly group: number;
  readonly count: number;
  readonly size: number;
  readonly #ring: Ring;
  readonly #entries: Uint32Array;
  readonly #tailWord: Uint16Array;
  readonly #data: Uint8Array;
  readonly #dataAddr: number;
  readonly #ringMap: [bigint, number];
  readonly #dataMap: [bigint, number];
  #tail = 0;
  #unpublished = 0;
  #closed = false;

  /** Registers the ring; throws SystemError when the kernel lacks provided buffer rings. */
  constructor(ring: Ring, group: number, count: number, size: number) {
    if (count & (count - 1) || count < 1 || count > 32768) throw new RangeError(`buffer ring count must be a power of two up to 32768, got ${count}`);
    this.#ring = ring;
    this.group = group;
    this.count = count;
    this.size = size;
    const prot = C.PROT_READ | C.PROT_WRITE;
    const anon = C.MAP_PRIVATE | C.MAP_ANONYMOUS;
    const ringBytes = count * BUF.size;
    // SAFETY: both mappings are native memory the GC knows nothing about; they stay mapped until
    // `close()`, which unregisters the ring from the kernel first.
    const ringPtr = mmap(ringBytes, prot, anon, -1, 0, "buffer ring");
    this.#ringMap = [ringPtr, ringBytes];
    let dataPtr: bigint;
    try {
      dataPtr = mmap(count * size, prot, anon, -1, 0, "buffer ring data");
    } catch (e) {
      libc.munmap(ringPtr, ringBytes);
      throw e;
    }
    this.#dataMap = [dataPtr, count * size];
    this.#entries = new Uint32Array(ffi.view(ringPtr, ringBytes));
    this.#tailWord = new Uint16Array(ffi.view(ringPtr, ringBytes));
    this.#data = new Uint8Array(ffi.view(dataPtr, count * size));
    this.#dataAddr = Number(dataPtr);
    const reg = new DataView(new ArrayBuffer(LAYOUT.io_uring_buf_reg.size));
    const R = LAYOUT.io_uring_buf_reg.fields;
    reg.setBigUint64(R.ringAddr.offset, ringPtr, true);
    reg.setUint32(R.ringEntries.offset, count, true);
    reg.setUint16(R.bgid.offset, group, true);
    try {
      ring.register(IORING.IORING_REGISTER_PBUF_RING, reg, 1, "pbuf_ring");
    } catch (e) {
      libc.munmap(ringPtr, ringBytes);
      libc.munmap(dataPtr, count * size);
      throw e;
    }
    for (let bid = 0; bid < count; bid++) this.#add(bid, bid);
    this.#publish(count);
  }

  /** Bytes `[0, length)` of buffer `bid`, as a view over the native memory. */
  view(bid: number, length: number): Uint8Array {
    return this.#data.subarray(bid * this.size, bid * this.size + length);
  }

  /** Gives buffer `bid` back; the kernel sees it after the next {@link publish}. */
  recycle(bid: number): void {
    this.#add(bid, this.#unpublished++);
  }

  /** Publishes the recycled buffers to the kernel (one release store for the lot). */
  publish(): void {
    if (this.#unpublished === 0) return;
    this.#publish(this.#unpublished);
    this.#unpublished = 0;
  }

  #add(bid: number, offset: number): void {
    const at = ((this.#tail + offset) & (this.count - 1)) * (BUF.size / 4);
    const addr = this.#dataAddr + bid * this.size;
    this.#entries[at + BUF.fields.addr.offset / 4] = addr >>> 0;
    this.#entries[at + BUF.fields.addr.offset / 4 + 1] = Math.floor(addr / 0x1_0000_0000);
    this.#entries[at + BUF.fields.len.offset / 4] = this.size;
    // bid (u16) shares word 3 with the reserved field the ring's tail overlays in entry 0.
    const w = at + BUF.fields.bid.offset / 4;
    this.#entries[w] = (this.#entries[w]! & 0xffff0000) | bid;
  }

  #publish(n: number): void {
    this.#tail = (this.#tail + n) & 0xffff;
    Atomics.store(this.#tailWord, LAYOUT.io_uring_buf_ring.fields.tail.offset / 2, this.#tail);
  }

  /** Unregisters the ring and frees its memory. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const reg = new DataView(new ArrayBuffer(LAYOUT.io_uring_buf_reg.size));
    reg.setUint16(LAYOUT.io_uring_buf_reg.fields.bgid.offset, this.group, true);
    try {
      this.#ring.register(IORING.IORING_UNREGISTER_PBUF_RING, reg, 1, "unregister pbuf_ring");
    } catch {
      // The ring is being torn down anyway; its fd's release frees the registration.
    }
    libc.munmap(...this.#ringMap);
    libc.munmap(...this.#dataMap);
  }
}

/** Native memory that outlives any JS object referring to it: calloc'd, freed by `free()`. */
export class NativeBlock {
  readonly address: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly #ptr: bigint;
  #freed = false;

  constructor(size: number) {
    const p = libc.calloc(1, size);
    if (p === 0n) throw new SystemError(12, "calloc", `${size} bytes`);
    this.#ptr = p;
    this.address = Number(p);
    this.bytes = new Uint8Array(ffi.view(p, size));
    this.view = new DataView(this.bytes.buffer);
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    libc.free(this.#ptr);
  }
}

/** Bytes per SQE, CQE, and 32-bit words per SQE. */
export const SIZES = { sqe: SQE_SIZE, cqe: CQE_SIZE, sqeWords: SQE_WORDS } as const;
