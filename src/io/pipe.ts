/**
 * Anonymous pipes as a pair of {@link FileDescriptor}s.
 */
import { close, pipe } from "../sys/posix/fd.js";
import { FileDescriptor } from "./fd.js";
import type { HandleOptions } from "./handle.js";
import { NO_WINDOWS_HANDLES, requireUnix } from "./unsupported.js";

/**
 * Anonymous pipes (pipe2 with O_NONBLOCK | O_CLOEXEC).
 *
 * Not on Windows: there `create` throws a SystemError with code EOPNOTSUPP whose message names
 * the alternative (a TcpStream connected to a TcpListener on 127.0.0.1).
 *
 * @example
 * ```ts
 * import { Pipe } from "evloop";
 * const [r, w] = Pipe.create();
 * await w.writeAll(new TextEncoder().encode("ping"));
 * await w.close(); // the reader sees end of stream after "ping"
 * for await (const chunk of r) console.log(new TextDecoder().decode(chunk));
 * await r.close();
 * ```
 */
export class Pipe {
  private constructor() {}

  /**
   * Creates a pipe and returns `[reader, writer]`, both owned by the returned handles.
   * `writer.shutdown()` closes the write end, which is how a pipe signals end of stream.
   *
   * @example
   * ```ts
   * const [reader, writer] = Pipe.create({ loop });
   * ```
   */
  static create(options: HandleOptions = {}): [reader: FileDescriptor, writer: FileDescriptor] {
    requireUnix("pipe", "Pipe", "connect a TcpStream to a TcpListener on 127.0.0.1", NO_WINDOWS_HANDLES);
    const [r, w] = pipe(true);
    try {
      return [FileDescriptor.from(r, options), FileDescriptor.from(w, options)];
    } catch (e) {
      // Bad options (an invalid loop) must not leak the two fds just created.
      close(r);
      close(w);
      throw e;
    }
  }
}
