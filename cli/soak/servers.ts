/**
 * The soak's servers: TCP listeners on 127.0.0.1 and ::1 (where IPv6 is there), a Unix stream
 * listener in the run's temp dir, and UDP echo sockets. They run on the loop under test, or for
 * the blocking backend on a loop of their own in a Worker (`peer.ts`), where they can wait for
 * the next client while the main thread's blocking operation holds it.
 *
 * Accepts are aborted and timed out at random like everything else: a listener's accept
 * usually waits for the next connection, so its cancellation hits it in flight. The Unix
 * listener's backlog is small, so Unix connects wait for a free slot now and then and their
 * cancellation can find them in flight too.
 */
import { join } from "node:path";
import { TcpListener, UdpSocket, UnixListener } from "evloop";
import { cancelled, drawCancel, prngFor, SoakFailure, type CancelMix, type Phase } from "./common.js";
import { udpEcho } from "./datagrams.js";
import { echoStream, type SoakStream } from "./streams.js";

/** Where the servers listen; null where IPv6 loopback is unavailable. */
export interface ServerAddresses {
  readonly tcp4: number;
  readonly tcp6: number | null;
  readonly unix: string;
  readonly udp4: number;
  readonly udp6: number | null;
}

/** Running servers. */
export interface Servers {
  readonly addresses: ServerAddresses;
  /** Closes the listeners and sockets and waits for every handler to end. */
  stop(): Promise<void>;
}

const ACCEPT_MIX: CancelMix = { abort: 0.15, timeout: 0.1 };
const UNIX_BACKLOG = 4;
const TCP_BACKLOG = 128;

/** Accepts until the listener is closed, starting an echo handler per connection. */
async function acceptLoop(phase: Phase, listener: TcpListener | UnixListener, seed: number, key: number, where: string): Promise<void> {
  const rand = prngFor(seed, key);
  const handlers = new Set<Promise<void>>();
  try {
    for (let i = 0; ; i++) {
      const cancel = drawCancel(phase, rand, ACCEPT_MIX, false);
      let conn: SoakStream;
      try {
        conn = phase.track(await listener.accept(cancel.options));
      } catch (e) {
        if (listener.closed) break;
        if (cancelled(phase, cancel, e, "accept", `${where}: accept`)) continue;
        // The client gave up (its connect was cancelled) before the connection was accepted.
        if ((e as { code?: unknown }).code === "ECONNABORTED") {
          phase.count(e);
          continue;
        }
        throw e;
      } finally {
        cancel.finish();
      }
      phase.done();
      // echoStream records its own errors and never rejects.
      const handler = echoStream(phase, conn, prngFor(seed, key, i), `${where} connection ${i}`);
      handlers.add(handler);
      void handler.then(() => handlers.delete(handler));
    }
  } catch (e) {
    if (!(e instanceof SoakFailure)) phase.unexpected(e, `${where}: accept`);
  } finally {
    await Promise.all(handlers);
  }
}

/** Binds ::1 where the machine has IPv6 loopback; null otherwise. */
async function onIPv6<T>(bind: () => Promise<T>): Promise<T | null> {
  try {
    return await bind();
  } catch {
    return null;
  }
}

/** Starts the servers on `phase.loop`; `dir` holds the Unix socket. */
export async function startServers(phase: Phase, dir: string, seed: number): Promise<Servers> {
  const loop = phase.loop;
  const tcp4 = phase.track(await TcpListener.bind({ host: "127.0.0.1", port: 0, backlog: TCP_BACKLOG, loop }));
  const tcp6 = await onIPv6(() => TcpListener.bind({ host: "::1", port: 0, backlog: TCP_BACKLOG, ipv6Only: true, loop }));
  const unix = phase.track(await UnixListener.bind({ path: join(dir, `${phase.mode.replace(/[^\w-]/g, "-")}.sock`), backlog: UNIX_BACKLOG, loop }));
  const udp4 = phase.track(await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop }));
  const udp6 = await onIPv6(() => UdpSocket.bind({ host: "::1", port: 0, loop }));
  if (tcp6) phase.track(tcp6);
  if (udp6) phase.track(udp6);

  const tasks = [acceptLoop(phase, tcp4, seed, 101, "tcp4 server"), acceptLoop(phase, unix, seed, 103, "unix server"), udpEcho(phase, udp4, prngFor(seed, 104), "udp4 server")];
  if (tcp6) tasks.push(acceptLoop(phase, tcp6, seed, 102, "tcp6 server"));
  if (udp6) tasks.push(udpEcho(phase, udp6, prngFor(seed, 105), "udp6 server"));

  return {
    addresses: { tcp4: tcp4.address.port, tcp6: tcp6?.address.port ?? null, unix: unix.address.path, udp4: udp4.address.port, udp6: udp6?.address.port ?? null },
    async stop() {
      phase.stopping = true;
      for (const h of [tcp4, tcp6, unix, udp4, udp6]) if (h) await phase.close(h);
      await Promise.all(tasks);
    },
  };
}
