/**
 * The echo servers `evloop demo` compares, both in this process: one on evloop's TcpListener,
 * one on `node:net`. Both disable Nagle on accepted sockets, as an echo server answering small
 * pipelined messages should, so neither waits on delayed ACKs.
 */
import net from "node:net";
import { SystemError, TcpListener, type Loop, type TcpStream } from "evloop";

/** A running echo server. */
export interface EchoServer {
  readonly port: number;
  /**
   * Stops accepting, waits a moment for connections the clients already closed to finish, cuts
   * off the rest, and resolves when everything is closed. Rejects with the first unexpected
   * error any connection hit.
   */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";
const BUFFER_SIZE = 64 * 1024;
/** How long close() waits for connections to end by themselves. */
const DRAIN_MS = 1000;

/** Errors a peer causes by going away mid-echo; they end one connection and nothing more. */
function isDisconnect(e: unknown): boolean {
  return e instanceof SystemError && (e.code === "ECONNRESET" || e.code === "EPIPE" || e.code === "EBADF");
}

function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([work.then(() => true), late]).finally(() => clearTimeout(timer));
}

/** Starts an echo server on evloop's `loop` (its backend and driver are the caller's choice). */
export async function startEvloopEchoServer(loop: Loop): Promise<EchoServer> {
  const listener = await TcpListener.bind({ host: HOST, port: 0, loop });
  const open = new Set<TcpStream>();
  const handlers = new Set<Promise<void>>();
  let failure: unknown;

  const echo = async (c: TcpStream): Promise<void> => {
    const buf = new Uint8Array(BUFFER_SIZE);
    try {
      c.setNoDelay();
      for (;;) {
        const n = await c.read(buf);
        if (n === 0) break;
        await c.writeAll(buf.subarray(0, n));
      }
    } catch (e) {
      if (!isDisconnect(e)) failure ??= e;
    } finally {
      open.delete(c);
      await c.close();
    }
  };

  const accepting = (async () => {
    for await (const c of listener) {
      open.add(c);
      const h = echo(c);
      handlers.add(h);
      void h.finally(() => handlers.delete(h));
    }
  })().catch((e: unknown) => {
    failure ??= e;
  });

  return {
    port: listener.address.port,
    async close() {
      // Closing the listener ends the `for await` above; it also releases the listener's hold
      // on the loop, without which guest mode would keep the process alive.
      await listener.close();
      await accepting;
      if (!(await within(DRAIN_MS, Promise.all(handlers)))) {
        // Closing a stream rejects its pending read with EBADF, which its handler ignores.
        await Promise.all([...open].map((c) => c.close()));
        await Promise.all(handlers);
      }
      if (failure !== undefined) throw failure;
    },
  };
}

/** Starts the reference echo server on `node:net`: each socket piped back into itself. */
export async function startNodeEchoServer(): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  let failure: Error | undefined;
  const server = net.createServer({ noDelay: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "ECONNRESET" && e.code !== "EPIPE") failure ??= e;
    });
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, HOST, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (!(await within(DRAIN_MS, closed))) {
        for (const s of sockets) s.destroy();
        await closed;
      }
      if (failure !== undefined) throw failure;
    },
  };
}
