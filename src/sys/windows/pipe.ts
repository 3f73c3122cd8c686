/**
 * Named pipes: the kernel32 calls `io/named-pipe.ts` is built on (CreateNamedPipeW,
 * ConnectNamedPipe, CreateFileW, SetNamedPipeHandleState, GetNamedPipeInfo, PeekNamedPipe,
 * DisconnectNamedPipe, and ReadFile/WriteFile for whole messages, in the shape
 * `loop.overlapped`'s `start` returns), bound on first use so that importing this module works
 * on every OS.
 *
 * A pipe handle crosses the rest of evloop as a number (its value), the way a socket does: the
 * IOCP loop takes it as an "fd", associates it with its port and reads and writes it with
 * overlapped ReadFile/WriteFile. Every handle here is opened overlapped (FILE_FLAG_OVERLAPPED);
 * a handle opened without it would block the thread in every call.
 *
 * Names are UTF-16 (`\\.\pipe\name`), passed NUL-terminated; {@link checkPipeName} is the one
 * check of a name, pure, for every OS.
 */
import { ffi } from "../../ffi/runtime/load.js";
import type { BoundLibrary, SymbolTable } from "../../ffi/types.js";
import { SystemError } from "../errors.js";
import { ERRNO, WIN } from "./constants.js";
import { windows } from "./api.js";
import { lastError, winError } from "./errors.js";

/** The pipe calls; GetLastError, CloseHandle, ReadFile and WriteFile are `api.ts`'s. */
const PIPES = {
  // HANDLE CreateNamedPipeW(LPCWSTR name, DWORD openMode, DWORD pipeMode, DWORD maxInstances,
  //                         DWORD outBufferSize, DWORD inBufferSize, DWORD defaultTimeout,
  //                         LPSECURITY_ATTRIBUTES attributes)
  CreateNamedPipeW: { result: "pointer", params: ["buffer", "u32", "u32", "u32", "u32", "u32", "u32", "pointer"] },
  // BOOL ConnectNamedPipe(HANDLE pipe, LPOVERLAPPED ov)
  ConnectNamedPipe: { result: "i32", params: ["pointer", "pointer"] },
  // BOOL DisconnectNamedPipe(HANDLE pipe)
  DisconnectNamedPipe: { result: "i32", params: ["pointer"] },
  // HANDLE CreateFileW(LPCWSTR name, DWORD access, DWORD share, LPSECURITY_ATTRIBUTES attributes,
  //                    DWORD disposition, DWORD flagsAndAttributes, HANDLE template)
  CreateFileW: { result: "pointer", params: ["buffer", "u32", "u32", "pointer", "u32", "u32", "pointer"] },
  // BOOL SetNamedPipeHandleState(HANDLE pipe, LPDWORD mode, LPDWORD maxCollection, LPDWORD timeout)
  SetNamedPipeHandleState: { result: "i32", params: ["pointer", "buffer", "pointer", "pointer"] },
  // BOOL GetNamedPipeHandleStateW(HANDLE pipe, LPDWORD state, LPDWORD curInstances,
  //                               LPDWORD maxCollection, LPDWORD timeout, LPWSTR user, DWORD userSize)
  GetNamedPipeHandleStateW: { result: "i32", params: ["pointer", "pointer", "buffer", "pointer", "pointer", "pointer", "u32"] },
  // BOOL GetNamedPipeInfo(HANDLE pipe, LPDWORD flags, LPDWORD outBufferSize,
  //                       LPDWORD inBufferSize, LPDWORD maxInstances)
  GetNamedPipeInfo: { result: "i32", params: ["pointer", "buffer", "buffer", "buffer", "buffer"] },
  // BOOL PeekNamedPipe(HANDLE pipe, LPVOID buf, DWORD size, LPDWORD read, LPDWORD available,
  //                    LPDWORD leftThisMessage)
  PeekNamedPipe: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "buffer", "buffer"] },
} as const satisfies SymbolTable;

let lib: BoundLibrary<typeof PIPES> | null = null;

/** The pipe calls, bound on first use; throws off Windows (through `windows()`). */
function pipes(): BoundLibrary<typeof PIPES> {
  if (lib !== null) return lib;
  windows();
  lib = ffi.open("kernel32.dll", PIPES);
  return lib;
}

/** GetLastError, right after the call that set it. */
function lastCode(): number {
  return windows().kernel32.GetLastError();
}

/** `\\.\pipe\`: the local pipe namespace, the only one evloop opens. */
export const PIPE_PREFIX = "\\\\.\\pipe\\";

/** "The entire pipe name string can be up to 256 characters long" (CreateNamedPipeW's docs). */
export const PIPE_NAME_MAX = 256;

/**
 * Checks a pipe name and returns it as a NUL-terminated UTF-16 string: TypeError unless it is a
 * string of `\\.\pipe\` (any case) and at least one more character, none of them NUL;
 * RangeError past {@link PIPE_NAME_MAX} characters. Pure: works on every OS.
 */
export function checkPipeName(name: unknown): Uint16Array {
  if (typeof name !== "string") throw new TypeError(`pipe name must be a string, got ${typeof name}`);
  if (name.slice(0, PIPE_PREFIX.length).toLowerCase() !== PIPE_PREFIX || name.length === PIPE_PREFIX.length) {
    throw new TypeError(`pipe name must be \\\\.\\pipe\\ followed by a name, got ${JSON.stringify(name)}`);
  }
  if (name.length > PIPE_NAME_MAX) throw new RangeError(`pipe name must be at most ${PIPE_NAME_MAX} characters, got ${name.length}`);
  if (name.includes("\0")) throw new TypeError("pipe name must not contain NUL characters");
  const out = new Uint16Array(name.length + 1);
  for (let i = 0; i < name.length; i++) out[i] = name.charCodeAt(i);
  return out;
}

/** The shape of one server instance (CreateNamedPipeW's arguments). */
export interface PipeInstanceOptions {
  /** The first instance of the name: fails with EADDRINUSE when the name is taken. */
  readonly first: boolean;
  readonly message: boolean;
  readonly maxInstances: number;
  readonly inBufferSize: number;
  readonly outBufferSize: number;
}

/**
 * CreateNamedPipeW: a new, overlapped, duplex server instance of `name` (from
 * {@link checkPipeName}), refusing remote clients. Returns the handle's value.
 */
export function createNamedPipe(name: Uint16Array, o: PipeInstanceOptions): number {
  const openMode = WIN.PIPE_ACCESS_DUPLEX | WIN.FILE_FLAG_OVERLAPPED | (o.first ? WIN.FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  const pipeMode = (o.message ? WIN.PIPE_TYPE_MESSAGE | WIN.PIPE_READMODE_MESSAGE : WIN.PIPE_TYPE_BYTE | WIN.PIPE_READMODE_BYTE) | WIN.PIPE_REJECT_REMOTE_CLIENTS;
  // The default timeout (0: 50 ms) is only WaitNamedPipe's, which evloop does not call.
  const h = pipes().CreateNamedPipeW(name, openMode, pipeMode, o.maxInstances, o.outBufferSize, o.inBufferSize, 0, 0n);
  if (h === WIN.INVALID_HANDLE_VALUE) {
    const code = lastCode();
    // FILE_FLAG_FIRST_PIPE_INSTANCE's refusal (Wine: a full pipe's), another server has the name.
    if (o.first && (code === WIN.ERROR_ACCESS_DENIED || code === WIN.ERROR_PIPE_BUSY)) throw new SystemError(ERRNO.EADDRINUSE, "CreateNamedPipeW", `a pipe named ${decode(name)} exists already`);
    throw winError(code, "CreateNamedPipeW", code === WIN.ERROR_PIPE_BUSY ? `all ${o.maxInstances} instances of ${decode(name)} are in use` : undefined);
  }
  if (o.first && pipeInstances(Number(h)) > 1) {
    // Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE: a first instance that is not alone joined
    // another server's pipe.
    closePipe(Number(h));
    throw new SystemError(ERRNO.EADDRINUSE, "CreateNamedPipeW", `a pipe named ${decode(name)} exists already`);
  }
  return Number(h);
}

/**
 * ConnectNamedPipe on an overlapped server instance: 0 (connected within the call), 997
 * (ERROR_IO_PENDING: the packet will say), or the error: ERROR_PIPE_CONNECTED (535, a client
 * connected before the call; no packet comes), ERROR_NO_DATA (232, a client came and went).
 */
export function connectNamedPipe(pipe: number, overlapped: bigint): number {
  return pipes().ConnectNamedPipe(pipe, overlapped) ? 0 : lastCode();
}

/** DisconnectNamedPipe: drops the instance's client (whose calls then fail), ready to connect again. */
export function disconnectNamedPipe(pipe: number): void {
  if (!pipes().DisconnectNamedPipe(pipe)) throw lastError("DisconnectNamedPipe");
}

/**
 * CreateFileW on a pipe name: the client end, overlapped, read and write, identification-level
 * impersonation only. Throws ENOENT when no server has the name, EBUSY (ERROR_PIPE_BUSY) when
 * every instance is in use.
 */
export function openPipe(name: Uint16Array): number {
  const flags = WIN.FILE_FLAG_OVERLAPPED | WIN.SECURITY_SQOS_PRESENT | WIN.SECURITY_IDENTIFICATION;
  const h = pipes().CreateFileW(name, WIN.GENERIC_READ | WIN.GENERIC_WRITE, 0, 0n, WIN.OPEN_EXISTING, flags, 0n);
  if (h === WIN.INVALID_HANDLE_VALUE) {
    const code = lastCode();
    const detail = code === WIN.ERROR_FILE_NOT_FOUND ? `no pipe server is named ${decode(name)}` : undefined;
    throw winError(code, "CreateFileW", detail);
  }
  return Number(h);
}

/** SetNamedPipeHandleState: reads on this end return whole messages (PIPE_READMODE_MESSAGE). */
export function setMessageReadMode(pipe: number): void {
  if (!pipes().SetNamedPipeHandleState(pipe, new Uint32Array([WIN.PIPE_READMODE_MESSAGE]), 0n, 0n)) throw lastError("SetNamedPipeHandleState");
}

/** What GetNamedPipeInfo says of a pipe. */
export interface PipeInfo {
  /** The pipe is of message type (PIPE_TYPE_MESSAGE). */
  readonly message: boolean;
  /** This handle is the server end. */
  readonly server: boolean;
  readonly outBufferSize: number;
  readonly inBufferSize: number;
  /** 255: unlimited. */
  readonly maxInstances: number;
}

/** GetNamedPipeInfo. */
export function pipeInfo(pipe: number): PipeInfo {
  const out = new Uint32Array(4);
  if (!pipes().GetNamedPipeInfo(pipe, out.subarray(0, 1), out.subarray(1, 2), out.subarray(2, 3), out.subarray(3, 4))) {
    throw lastError("GetNamedPipeInfo");
  }
  return {
    message: (out[0]! & WIN.PIPE_TYPE_MESSAGE) !== 0,
    server: (out[0]! & WIN.PIPE_SERVER_END) !== 0,
    outBufferSize: out[1]!,
    inBufferSize: out[2]!,
    maxInstances: out[3]!,
  };
}

/** How many instances of the pipe exist (GetNamedPipeHandleStateW), this one included. */
export function pipeInstances(pipe: number): number {
  const out = new Uint32Array(1);
  if (!pipes().GetNamedPipeHandleStateW(pipe, 0n, out, 0n, 0n, 0n, 0)) throw lastError("GetNamedPipeHandleStateW");
  return out[0]!;
}

/** What PeekNamedPipe says is waiting. */
export interface PipePeek {
  /** Bytes waiting in the pipe. */
  readonly available: number;
  /** Message mode: bytes of the message at the head not read yet (0 in byte mode). */
  readonly leftThisMessage: number;
}

/**
 * PeekNamedPipe without copying anything: never blocks, also on an overlapped handle. A pipe
 * whose other end is gone fails with EPIPE (ERROR_BROKEN_PIPE).
 */
export function peekPipe(pipe: number): PipePeek {
  const out = new Uint32Array(2);
  if (!pipes().PeekNamedPipe(pipe, 0n, 0, 0n, out.subarray(0, 1), out.subarray(1, 2))) throw lastError("PeekNamedPipe");
  return { available: out[0]!, leftThisMessage: out[1]! };
}

/**
 * Overlapped ReadFile of up to `size` bytes into native memory at `buffer`: 0 (done within the
 * call), 997 (pending) or the error (ERROR_MORE_DATA 234: a message longer than `size`, whose
 * first `size` bytes were read). `buffer` and `overlapped` must stay allocated until the
 * operation's packet (or, done within the call in skip mode, until it returns).
 */
export function readFile(pipe: number, buffer: bigint, size: number, overlapped: bigint): number {
  return windows().kernel32.ReadFile(pipe, buffer, size, 0n, overlapped) ? 0 : lastCode();
}

/** Overlapped WriteFile of `size` bytes from native memory at `buffer`; as {@link readFile}. */
export function writeFile(pipe: number, buffer: bigint, size: number, overlapped: bigint): number {
  return windows().kernel32.WriteFile(pipe, buffer, size, 0n, overlapped) ? 0 : lastCode();
}

/** CloseHandle on a pipe the loop never saw (a failed setup). */
export function closePipe(pipe: number): void {
  if (!windows().kernel32.CloseHandle(pipe)) throw lastError("CloseHandle");
}

/** A NUL-terminated UTF-16 name back to a string, for messages. */
function decode(name: Uint16Array): string {
  let s = "";
  for (let i = 0; i < name.length && name[i] !== 0; i++) s += String.fromCharCode(name[i]!);
  return s;
}
