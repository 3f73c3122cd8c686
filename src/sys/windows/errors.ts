/**
 * Windows' errors as evloop's `SystemError`s: a Winsock error (WSAECONNREFUSED, 10061) or a Win32
 * error (ERROR_CONNECTION_REFUSED, 1225, what an overlapped ConnectEx reports) or an NTSTATUS
 * (what a completion packet carries) becomes the same `code` as on Linux (`ECONNREFUSED`), so
 * user code catches one set of codes on every OS. `errno` is the number in the Windows table
 * (`constants.ts`): Winsock's own number where Winsock has the name.
 */
import { SystemError } from "../errors.js";
import type { ErrnoName } from "../table.js";
import { ERRNO, WIN } from "./constants.js";
import { windows } from "./api.js";

/** Win32 errors (what GetLastError and completions report) by the POSIX name they mean. */
const WIN32: Readonly<Record<number, ErrnoName>> = {
  2: "ENOENT", // ERROR_FILE_NOT_FOUND
  3: "ENOENT", // ERROR_PATH_NOT_FOUND
  4: "EMFILE", // ERROR_TOO_MANY_OPEN_FILES
  5: "EACCES", // ERROR_ACCESS_DENIED
  [WIN.ERROR_INVALID_HANDLE]: "EBADF",
  [WIN.ERROR_NOT_ENOUGH_MEMORY]: "ENOMEM",
  14: "ENOMEM", // ERROR_OUTOFMEMORY
  [WIN.ERROR_NOT_SUPPORTED]: "EOPNOTSUPP",
  [WIN.ERROR_NETNAME_DELETED]: "ECONNRESET",
  [WIN.ERROR_INVALID_PARAMETER]: "EINVAL",
  [WIN.ERROR_BROKEN_PIPE]: "EPIPE",
  [WIN.ERROR_SEM_TIMEOUT]: "ETIMEDOUT",
  [WIN.ERROR_MORE_DATA]: "EMSGSIZE",
  [WIN.ERROR_INVALID_NAME]: "EINVAL",
  [WIN.ERROR_BAD_PIPE]: "EINVAL",
  [WIN.ERROR_PIPE_BUSY]: "EBUSY",
  [WIN.ERROR_NO_DATA]: "EPIPE", // the pipe is being closed
  [WIN.ERROR_PIPE_NOT_CONNECTED]: "ENOTCONN",
  [WIN.ERROR_PIPE_CONNECTED]: "EISCONN",
  [WIN.ERROR_PIPE_LISTENING]: "ENOTCONN",
  [WIN.ERROR_HANDLES_CLOSED]: "EBADF",
  [WIN.ERROR_OPERATION_ABORTED]: "ECANCELED",
  1117: "EIO", // ERROR_IO_DEVICE
  [WIN.ERROR_CONNECTION_REFUSED]: "ECONNREFUSED",
  [WIN.ERROR_GRACEFUL_DISCONNECT]: "ECONNRESET",
  [WIN.ERROR_ADDRESS_ALREADY_ASSOCIATED]: "EADDRINUSE",
  [WIN.ERROR_CONNECTION_INVALID]: "ENOTCONN",
  1230: "ECONNREFUSED", // ERROR_CONNECTION_ACTIVE
  [WIN.ERROR_NETWORK_UNREACHABLE]: "ENETUNREACH",
  [WIN.ERROR_HOST_UNREACHABLE]: "EHOSTUNREACH",
  [WIN.ERROR_PROTOCOL_UNREACHABLE]: "ENETUNREACH",
  // A UDP socket's earlier datagram met a closed port: Linux reports ECONNREFUSED.
  [WIN.ERROR_PORT_UNREACHABLE]: "ECONNREFUSED",
  [WIN.ERROR_REQUEST_ABORTED]: "ECANCELED",
  [WIN.ERROR_CONNECTION_ABORTED]: "ECONNABORTED",
  1214: "EINVAL", // ERROR_INVALID_NETNAME
  1228: "EINVAL", // ERROR_ADDRESS_NOT_ASSOCIATED
};

const WSA_NUMBERS = new Set<number>(Object.values(ERRNO).filter((n) => n >= 10000));

/**
 * The errno (in the Windows table) of a Winsock or Win32 error code. A code with no POSIX
 * meaning keeps its own number, and its SystemError says "Windows error N".
 */
export function errnoOf(code: number): number {
  if (WSA_NUMBERS.has(code)) return code;
  const name = WIN32[code];
  return name === undefined ? code : ERRNO[name];
}

/** The SystemError for a Winsock or Win32 error `code` from `syscall`. */
export function winError(code: number, syscall: string, detail?: string): SystemError {
  const errno = errnoOf(code);
  const known = WSA_NUMBERS.has(errno) || Object.values(ERRNO).includes(errno as never);
  return new SystemError(errno, syscall, detail ?? (known ? undefined : `Windows error ${code}`));
}

/** The Win32 error an NTSTATUS means (STATUS_CANCELLED → ERROR_OPERATION_ABORTED …). */
export function dosError(status: number): number {
  return windows().ntdll.RtlNtStatusToDosError(status >>> 0);
}

/** The SystemError for a failed NTSTATUS from `syscall`. */
export function ntError(status: number, syscall: string): SystemError {
  return winError(dosError(status), syscall);
}

/** GetLastError()'s error, as a SystemError from `syscall`; read it right after the call. */
export function lastError(syscall: string, detail?: string): SystemError {
  return winError(windows().kernel32.GetLastError(), syscall, detail);
}

/** WSAGetLastError()'s error, as a SystemError from `syscall`; read it right after the call. */
export function wsaError(syscall: string, detail?: string): SystemError {
  return winError(windows().ws2.WSAGetLastError(), syscall, detail);
}
