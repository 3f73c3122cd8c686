/**
 * The Windows API evloop calls: kernel32 (IOCP, heap, handles), ws2_32 (Winsock) and ntdll (the
 * AFD driver behind readiness), each function with its C prototype, bound on first use so that
 * importing this module works on every OS. Winsock's extension functions (AcceptEx, ConnectEx,
 * GetAcceptExSockaddrs) have no exports: {@link extensions} asks WSAIoctl for them once.
 *
 * Conventions: HANDLE and SOCKET cross as `pointer` (bigints; INVALID_HANDLE_VALUE and
 * INVALID_SOCKET arrive as -1n), so a failed call is told apart from a handle. The last error is
 * read right after the call that set it (`GetLastError`/`WSAGetLastError`): nothing evloop calls
 * in between sets it.
 */
import { ffi } from "../../ffi/runtime/load.js";
import type { BoundLibrary, NativeFunction, SymbolTable } from "../../ffi/types.js";
import { dataView } from "../../ffi/layout.js";
import { TARGET } from "../target.js";
import { WIN, WIN_LAYOUT } from "./constants.js";

const KERNEL32 = {
  // DWORD GetLastError(void)
  GetLastError: { result: "u32", params: [] },
  // BOOL CloseHandle(HANDLE h)
  CloseHandle: { result: "i32", params: ["pointer"] },
  // HANDLE GetProcessHeap(void)
  GetProcessHeap: { result: "pointer", params: [] },
  // LPVOID HeapAlloc(HANDLE heap, DWORD flags, SIZE_T bytes)
  HeapAlloc: { result: "pointer", params: ["pointer", "u32", "usize"] },
  // BOOL HeapFree(HANDLE heap, DWORD flags, LPVOID mem)
  HeapFree: { result: "i32", params: ["pointer", "u32", "pointer"] },
  // HANDLE CreateIoCompletionPort(HANDLE file, HANDLE port, ULONG_PTR key, DWORD threads)
  CreateIoCompletionPort: { result: "pointer", params: ["pointer", "pointer", "usize", "u32"] },
  // BOOL GetQueuedCompletionStatusEx(HANDLE port, LPOVERLAPPED_ENTRY entries, ULONG count,
  //                                  PULONG removed, DWORD ms, BOOL alertable)
  GetQueuedCompletionStatusEx: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "u32", "i32"] },
  // BOOL PostQueuedCompletionStatus(HANDLE port, DWORD bytes, ULONG_PTR key, LPOVERLAPPED ov)
  PostQueuedCompletionStatus: { result: "i32", params: ["pointer", "u32", "usize", "pointer"] },
  // BOOL CancelIoEx(HANDLE file, LPOVERLAPPED ov)
  CancelIoEx: { result: "i32", params: ["pointer", "pointer"] },
  // BOOL SetFileCompletionNotificationModes(HANDLE file, UCHAR flags)
  SetFileCompletionNotificationModes: { result: "i32", params: ["pointer", "u32"] },
  // BOOL SetHandleInformation(HANDLE h, DWORD mask, DWORD flags)
  SetHandleInformation: { result: "i32", params: ["pointer", "u32", "u32"] },
  // HANDLE GetCurrentProcess(void)
  GetCurrentProcess: { result: "pointer", params: [] },
  // BOOL GetProcessHandleCount(HANDLE process, PDWORD count)
  GetProcessHandleCount: { result: "i32", params: ["pointer", "buffer"] },
  // BOOL ReadFile(HANDLE file, LPVOID buf, DWORD n, LPDWORD read, LPOVERLAPPED ov)
  ReadFile: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "pointer"] },
  // BOOL WriteFile(HANDLE file, LPCVOID buf, DWORD n, LPDWORD written, LPOVERLAPPED ov)
  WriteFile: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "pointer"] },
  // DWORD GetFileType(HANDLE file)
  GetFileType: { result: "u32", params: ["pointer"] },
} as const satisfies SymbolTable;

const WS2_32 = {
  // int WSAStartup(WORD version, LPWSADATA data)
  WSAStartup: { result: "i32", params: ["u32", "buffer"] },
  // int WSAGetLastError(void)
  WSAGetLastError: { result: "i32", params: [] },
  // SOCKET WSASocketW(int af, int type, int protocol, LPWSAPROTOCOL_INFOW info, GROUP g, DWORD flags)
  WSASocketW: { result: "pointer", params: ["i32", "i32", "i32", "pointer", "u32", "u32"] },
  // int bind(SOCKET s, const struct sockaddr *name, int namelen)
  bind: { result: "i32", params: ["pointer", "buffer", "i32"] },
  // int listen(SOCKET s, int backlog)
  listen: { result: "i32", params: ["pointer", "i32"] },
  // int getsockname(SOCKET s, struct sockaddr *name, int *namelen)
  getsockname: { result: "i32", params: ["pointer", "buffer", "buffer"] },
  // int getpeername(SOCKET s, struct sockaddr *name, int *namelen)
  getpeername: { result: "i32", params: ["pointer", "buffer", "buffer"] },
  // int setsockopt(SOCKET s, int level, int name, const char *value, int len)
  setsockopt: { result: "i32", params: ["pointer", "i32", "i32", "buffer", "i32"] },
  // int getsockopt(SOCKET s, int level, int name, char *value, int *len)
  getsockopt: { result: "i32", params: ["pointer", "i32", "i32", "buffer", "buffer"] },
  // int connect(SOCKET s, const struct sockaddr *name, int namelen)
  connect: { result: "i32", params: ["pointer", "buffer", "i32"] },
  // SOCKET accept(SOCKET s, struct sockaddr *addr, int *addrlen)
  accept: { result: "pointer", params: ["pointer", "buffer", "buffer"] },
  // int send(SOCKET s, const char *buf, int len, int flags)
  send: { result: "i32", params: ["pointer", "buffer", "i32", "i32"] },
  // int recv(SOCKET s, char *buf, int len, int flags)
  recv: { result: "i32", params: ["pointer", "buffer", "i32", "i32"] },
  // int sendto(SOCKET s, const char *buf, int len, int flags, const struct sockaddr *to, int tolen)
  sendto: { result: "i32", params: ["pointer", "buffer", "i32", "i32", "buffer", "i32"] },
  // int recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from, int *fromlen)
  recvfrom: { result: "i32", params: ["pointer", "buffer", "i32", "i32", "buffer", "buffer"] },
  // int WSAPoll(LPWSAPOLLFD fds, ULONG count, INT timeout)
  WSAPoll: { result: "i32", params: ["buffer", "u32", "i32"] },
  // int shutdown(SOCKET s, int how)
  shutdown: { result: "i32", params: ["pointer", "i32"] },
  // int closesocket(SOCKET s)
  closesocket: { result: "i32", params: ["pointer"] },
  // int ioctlsocket(SOCKET s, long cmd, u_long *arg)
  ioctlsocket: { result: "i32", params: ["pointer", "u32", "buffer"] },
  // int WSAIoctl(SOCKET s, DWORD code, LPVOID in, DWORD inLen, LPVOID out, DWORD outLen,
  //              LPDWORD returned, LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
  WSAIoctl: { result: "i32", params: ["pointer", "u32", "buffer", "u32", "buffer", "u32", "buffer", "pointer", "pointer"] },
  // int WSARecv(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD received, LPDWORD flags,
  //             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
  WSARecv: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "pointer", "pointer", "pointer"] },
  // int WSASend(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
  //             LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
  WSASend: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "u32", "pointer", "pointer"] },
  // int WSARecvFrom(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD received, LPDWORD flags,
  //                 struct sockaddr *from, LPINT fromLen, LPWSAOVERLAPPED ov, … cr)
  WSARecvFrom: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "pointer", "pointer", "pointer", "pointer", "pointer"] },
  // int WSASendTo(SOCKET s, LPWSABUF bufs, DWORD count, LPDWORD sent, DWORD flags,
  //               const struct sockaddr *to, int toLen, LPWSAOVERLAPPED ov, … cr)
  WSASendTo: { result: "i32", params: ["pointer", "pointer", "u32", "pointer", "u32", "pointer", "i32", "pointer", "pointer"] },
} as const satisfies SymbolTable;

const NTDLL = {
  // NTSTATUS NtCreateFile(PHANDLE out, ACCESS_MASK access, POBJECT_ATTRIBUTES attrs,
  //                       PIO_STATUS_BLOCK iosb, PLARGE_INTEGER size, ULONG fileAttrs,
  //                       ULONG share, ULONG disposition, ULONG options, PVOID ea, ULONG eaLen)
  NtCreateFile: { result: "u32", params: ["pointer", "u32", "pointer", "pointer", "pointer", "u32", "u32", "u32", "u32", "pointer", "u32"] },
  // NTSTATUS NtDeviceIoControlFile(HANDLE file, HANDLE event, PIO_APC_ROUTINE apc,
  //                                PVOID apcContext, PIO_STATUS_BLOCK iosb, ULONG code,
  //                                PVOID in, ULONG inLen, PVOID out, ULONG outLen)
  NtDeviceIoControlFile: { result: "u32", params: ["pointer", "pointer", "pointer", "pointer", "pointer", "u32", "pointer", "u32", "pointer", "u32"] },
  // NTSTATUS NtCancelIoFileEx(HANDLE file, PIO_STATUS_BLOCK request, PIO_STATUS_BLOCK iosb)
  NtCancelIoFileEx: { result: "u32", params: ["pointer", "pointer", "pointer"] },
  // ULONG RtlNtStatusToDosError(NTSTATUS status)
  RtlNtStatusToDosError: { result: "u32", params: ["u32"] },
} as const satisfies SymbolTable;

/** Winsock's extension functions, found through WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER). */
const EXTENSIONS = {
  // BOOL AcceptEx(SOCKET listen, SOCKET accept, PVOID buf, DWORD recvLen, DWORD localLen,
  //               DWORD remoteLen, LPDWORD received, LPOVERLAPPED ov)
  AcceptEx: { result: "i32", params: ["pointer", "pointer", "pointer", "u32", "u32", "u32", "pointer", "pointer"] },
  // BOOL ConnectEx(SOCKET s, const struct sockaddr *name, int nameLen, PVOID send, DWORD sendLen,
  //                LPDWORD sent, LPOVERLAPPED ov)
  ConnectEx: { result: "i32", params: ["pointer", "pointer", "i32", "pointer", "u32", "pointer", "pointer"] },
  // void GetAcceptExSockaddrs(PVOID buf, DWORD recvLen, DWORD localLen, DWORD remoteLen,
  //                           sockaddr **local, LPINT localLen, sockaddr **remote, LPINT remoteLen)
  GetAcceptExSockaddrs: { result: "void", params: ["pointer", "u32", "u32", "u32", "buffer", "buffer", "buffer", "buffer"] },
} as const satisfies SymbolTable;

type Extensions = { readonly [K in keyof typeof EXTENSIONS]: NativeFunction<(typeof EXTENSIONS)[K]> };

/** The bound Windows API. */
export interface WindowsApi {
  readonly kernel32: BoundLibrary<typeof KERNEL32>;
  readonly ws2: BoundLibrary<typeof WS2_32>;
  readonly ntdll: BoundLibrary<typeof NTDLL>;
}

let api: WindowsApi | null = null;

/**
 * The Windows API, bound (and Winsock started, version 2.2) on first use. Throws off Windows,
 * naming the function's caller's OS, so a Windows-only path reached elsewhere says so.
 */
export function windows(): WindowsApi {
  if (api !== null) return api;
  if (TARGET.os !== "win32") throw new Error(`the Windows API is only on Windows (this is ${TARGET.os})`);
  const bound: WindowsApi = {
    kernel32: ffi.open("kernel32.dll", KERNEL32),
    ws2: ffi.open("ws2_32.dll", WS2_32),
    ntdll: ffi.open("ntdll.dll", NTDLL),
  };
  const data = new Uint8Array(WIN_LAYOUT.WSADATA.size);
  const rc = bound.ws2.WSAStartup(WIN.WINSOCK_VERSION_2_2, data);
  if (rc !== 0) throw new Error(`WSAStartup(2.2) failed with Winsock error ${rc}`);
  api = bound;
  return api;
}

/** Whether this process can call the Windows API (it is Windows). */
export const isWindows = TARGET.os === "win32";

let extensionFns: Extensions | null = null;

/** A GUID's 16 bytes from its text form (the first three groups are little-endian). */
export function guidBytes(text: string): Uint8Array {
  const hex = text.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new TypeError(`not a GUID: ${text}`);
  const out = new Uint8Array(16);
  const view = dataView(out);
  view.setUint32(0, parseInt(hex.slice(0, 8), 16), true);
  view.setUint16(4, parseInt(hex.slice(8, 12), 16), true);
  view.setUint16(6, parseInt(hex.slice(12, 16), 16), true);
  for (let i = 0; i < 8; i++) out[8 + i] = parseInt(hex.slice(16 + 2 * i, 18 + 2 * i), 16);
  return out;
}

/**
 * AcceptEx, ConnectEx and GetAcceptExSockaddrs, asked of Winsock through `socket` (any TCP
 * socket of the provider; the pointers are the same for every socket of it) once per process.
 */
export function extensions(socket: bigint): Extensions {
  if (extensionFns !== null) return extensionFns;
  const { ws2 } = windows();
  const out = new Uint8Array(8);
  const returned = new Uint8Array(4);
  const fn = (guid: string, name: keyof typeof EXTENSIONS): unknown => {
    const rc = ws2.WSAIoctl(socket, WIN.SIO_GET_EXTENSION_FUNCTION_POINTER, guidBytes(guid), 16, out, 8, returned, 0n, 0n);
    if (rc !== 0) throw new Error(`WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER, ${name}) failed with Winsock error ${ws2.WSAGetLastError()}`);
    return ffi.functionAt(dataView(out).getBigUint64(0, true), EXTENSIONS[name]);
  };
  extensionFns = {
    AcceptEx: fn(WIN.WSAID_ACCEPTEX, "AcceptEx"),
    ConnectEx: fn(WIN.WSAID_CONNECTEX, "ConnectEx"),
    GetAcceptExSockaddrs: fn(WIN.WSAID_GETACCEPTEXSOCKADDRS, "GetAcceptExSockaddrs"),
  } as Extensions;
  return extensionFns;
}
