/**
 * The handles that exist only on Unix (UnixStream, UnixListener, UnixDatagram, Pipe; and
 * FileDescriptor for anything but a socket) and what they do on Windows: importing them works everywhere, and each factory throws
 * (or, when async, rejects with) one kind of error there, a {@link SystemError} with code
 * EOPNOTSUPP whose message names the class and what to use instead. A SystemError and not a
 * plain Error because that is how evloop reports every "the OS cannot do this" (Winsock's own
 * socketpair refusal included), so `e.code === "EOPNOTSUPP"` is the one check on every OS.
 *
 * Why they cannot work there: Windows has no pollable file descriptors (its pipes and files are
 * handles, issue #13); Windows 10 1803 added AF_UNIX stream sockets, but evloop does not drive
 * them yet, and Wine 8, which evloop's Windows tests run under, refuses AF_UNIX sockets
 * (WSAEAFNOSUPPORT).
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO, TARGET } from "../sys/target.js";

/** Whether this OS has what the Unix-only handles need: AF_UNIX sockets, pipes and pollable fds. */
const UNIX_HANDLES = TARGET.os !== "win32";

/** Why AF_UNIX sockets are refused on Windows, for the Unix socket classes' messages. */
export const NO_UNIX_SOCKETS = "AF_UNIX sockets on Windows are not supported by evloop yet";
/** Why fds and pipes are refused on Windows, for FileDescriptor's and Pipe's messages. */
export const NO_WINDOWS_HANDLES = "pipes and other handles on Windows are not supported by evloop yet";

/**
 * On Windows, throws the SystemError (code EOPNOTSUPP, naming `syscall`) that says `what` is not
 * supported there, what to use `instead`, and `why`; elsewhere does nothing.
 *
 * @example
 * ```ts
 * requireUnix("socket", "UnixStream", "use TcpStream on 127.0.0.1", NO_UNIX_SOCKETS);
 * // on Windows: "socket EOPNOTSUPP: UnixStream is not supported on Windows: use TcpStream on
 * // 127.0.0.1 (AF_UNIX sockets on Windows are not supported by evloop yet)"
 * ```
 */
export function requireUnix(syscall: string, what: string, instead: string, why: string): void {
  if (UNIX_HANDLES) return;
  throw new SystemError(ERRNO.EOPNOTSUPP, syscall, `${what} is not supported on Windows: ${instead} (${why})`);
}

/**
 * Off Windows, throws the SystemError (code EOPNOTSUPP, naming `syscall`) that says `what` exists
 * only on Windows and what to use `instead`; on Windows does nothing. The named-pipe classes'
 * counterpart of {@link requireUnix}.
 *
 * @example
 * ```ts
 * requireWindows("CreateNamedPipeW", "NamedPipeServer", "use a UnixListener on a socket path");
 * // on Linux: "CreateNamedPipeW EOPNOTSUPP: NamedPipeServer is only on Windows: use a
 * // UnixListener on a socket path"
 * ```
 */
export function requireWindows(syscall: string, what: string, instead: string): void {
  if (!UNIX_HANDLES) return;
  throw new SystemError(ERRNO.EOPNOTSUPP, syscall, `${what} is only on Windows: ${instead}`);
}
