/**
 * Datagrams and descriptor passing under the soak: UDP lanes against an echo server (over
 * 127.0.0.1 and ::1), Unix datagram socket pairs, and SCM_RIGHTS lanes that pass a pipe's write
 * end over a Unix stream pair and move a payload through it.
 *
 * Every datagram carries a 16-byte header (lane, sequence number, corpus offset, length) and its
 * payload is that slice of the corpus, so the receiver checks every byte. The lanes go one
 * datagram at a time and require each to come back exactly once and in order: on loopback at
 * that depth nothing is dropped, so a missing datagram is one an aborted or timed-out receive
 * consumed, and a duplicate is one a send that rejected sent anyway; both fail the run. (The
 * contract: a rejected operation transferred nothing; see src/loop/event-loop.ts.)
 *
 * Where operations park, each receive is issued before the send it waits for, so its abort or
 * timeout finds it in flight; on the blocking backend the steps go one after the other.
 */
import { FileDescriptor, Pipe, UdpSocket, UnixDatagram, UnixStream, type OperationOptions } from "evloop";
import { between, CORPUS_SIZE, firstDifference, logSize, retrying, SoakFailure, STUCK_MS, type CancelMix, type Phase, type Rand } from "./common.js";
import { Expected } from "./streams.js";

const HEADER = 16;
const MAX_PAYLOAD = 8 * 1024;
const SEND_MIX: CancelMix = { abort: 0.15, timeout: 0.1 };
const RECEIVE_MIX: CancelMix = { abort: 0.2, timeout: 0.2 };
const SERVER_RECEIVE_MIX: CancelMix = { abort: 0.1, timeout: 0.1 };

/** Something datagrams go out of and come in to. */
interface DatagramEnd {
  send(buf: Uint8Array, options: OperationOptions): Promise<number>;
  receive(buf: Uint8Array, options: OperationOptions): Promise<number>;
}

function fail(phase: Phase, text: string): never {
  phase.fail(text);
  throw new SoakFailure(text);
}

/** Datagram `seq` of lane `lane`: the header and a random slice of the corpus. */
function makeDatagram(phase: Phase, rand: Rand, lane: number, seq: number): Uint8Array {
  const length = rand() < 0.05 ? 0 : logSize(rand, MAX_PAYLOAD);
  const offset = between(rand, 0, CORPUS_SIZE - length);
  const dg = new Uint8Array(HEADER + length);
  const view = new DataView(dg.buffer);
  view.setUint32(0, lane);
  view.setUint32(4, seq);
  view.setUint32(8, offset);
  view.setUint32(12, length);
  dg.set(phase.corpus.subarray(offset, offset + length), HEADER);
  return dg;
}

/** Sends `dg` whole, retrying a cancelled send (which sent nothing). */
async function sendRetrying(phase: Phase, end: DatagramEnd, dg: Uint8Array, rand: Rand, where: string): Promise<void> {
  const n = await retrying(phase, rand, SEND_MIX, true, "send", `${where}: send`, (options) => end.send(dg, options));
  if (n !== dg.length) fail(phase, `${where}: a send of a ${dg.length}-byte datagram resolved with ${n}`);
  phase.done();
}

/** Receives the next datagram, retrying cancelled receives; it must be `dg`, byte for byte. */
async function receiveExpecting(phase: Phase, end: DatagramEnd, dg: Uint8Array, rand: Rand, where: string): Promise<void> {
  const buf = new Uint8Array(MAX_PAYLOAD + HEADER + 1);
  const n = await retrying(phase, rand, RECEIVE_MIX, true, "receive", `${where}: receive`, (options) => end.receive(buf, options));
  phase.done();
  const got = buf.subarray(0, n);
  const k = firstDifference(got, dg);
  if (k >= 0) {
    const view = new DataView(buf.buffer);
    const seq = n >= HEADER ? view.getUint32(4) : -1;
    const wanted = new DataView(dg.buffer).getUint32(4);
    const what = seq !== wanted ? `datagram ${seq} arrived where ${wanted} was due (lost or duplicated)` : `byte ${k} of ${n} differs (expected ${dg.length} bytes)`;
    fail(phase, `checksum: ${where}: ${what}`);
  }
  phase.counters.bytesVerified += n - HEADER;
  phase.counters.datagrams++;
}

/**
 * `receive` started before `send` where operations park (so its cancellation finds it in
 * flight), after it on the blocking backend.
 */
async function exchange(phase: Phase, send: () => Promise<void>, receive: () => Promise<void>): Promise<void> {
  if (phase.blocking) {
    await send();
    await receive();
    return;
  }
  await Promise.all([receive(), send()]);
}

/**
 * A UDP lane: a socket on `host`, connected to the echo server (send/receive) or not
 * (sendTo/receiveFrom), one datagram at a time; a new socket every 50-300 datagrams.
 */
export async function udpLane(phase: Phase, name: string, index: number, rand: Rand, host: string, port: number): Promise<void> {
  for (let round = 0; !phase.stopping; round++) {
    const sock = phase.track(await UdpSocket.bind({ host, port: 0, loop: phase.loop }));
    try {
      const connected = rand() < 0.5;
      if (connected) await sock.connect({ host, port, timeout: STUCK_MS });
      const end: DatagramEnd = connected
        ? sock
        : { send: (b, o) => sock.sendTo(b, { address: host, port }, o), receive: async (b, o) => (await sock.receiveFrom(b, o)).bytes };
      for (let i = between(rand, 50, 300); i > 0 && !phase.stopping; i--) {
        const seq = phase.counters.datagrams;
        const where = `${name} socket ${round} datagram ${seq}`;
        phase.doing.set(name, where);
        const dg = makeDatagram(phase, rand, index, seq);
        await phase.breathe();
        await exchange(phase, () => sendRetrying(phase, end, dg, rand, where), () => receiveExpecting(phase, end, dg, rand, where));
      }
    } finally {
      await phase.close(sock);
    }
  }
  phase.doing.delete(name);
}

/**
 * A Unix datagram lane: a socket pair, each datagram sent from one end, checked at the other and
 * sent back; a new pair every 50-300 datagrams.
 */
export async function unixDatagramLane(phase: Phase, name: string, index: number, rand: Rand): Promise<void> {
  for (let round = 0; !phase.stopping; round++) {
    const [x, y] = UnixDatagram.pair({ loop: phase.loop });
    phase.track(x);
    phase.track(y);
    try {
      for (let i = between(rand, 50, 300); i > 0 && !phase.stopping; i--) {
        const seq = phase.counters.datagrams;
        const where = `${name} pair ${round} datagram ${seq}`;
        phase.doing.set(name, where);
        const dg = makeDatagram(phase, rand, index, seq);
        await phase.breathe();
        await exchange(phase, () => sendRetrying(phase, x, dg, rand, `${where} there`), () => receiveExpecting(phase, y, dg, rand, `${where} there`));
        await exchange(phase, () => sendRetrying(phase, y, dg, rand, `${where} back`), () => receiveExpecting(phase, x, dg, rand, `${where} back`));
      }
    } finally {
      await phase.close(x);
      await phase.close(y);
    }
  }
  phase.doing.delete(name);
}

/**
 * The UDP echo server: receives (some receives aborted or timed out) and sends each datagram
 * back to where it came from, retrying a cancelled send. Ends when the socket is closed.
 */
export async function udpEcho(phase: Phase, sock: UdpSocket, rand: Rand, where: string): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const got = await retrying(phase, rand, SERVER_RECEIVE_MIX, false, "receive", `${where}: receive`, (options) => sock.receiveFrom(buf, options));
      phase.done();
      const reply = buf.subarray(0, got.bytes);
      await sendRetrying(phase, { send: (b, o) => sock.sendTo(b, got.address, o), receive: () => Promise.reject(new Error("unused")) }, reply, rand, where);
    }
  } catch (e) {
    if (e instanceof SoakFailure) return;
    if (phase.stopping && (e as { code?: unknown }).code === "EBADF") return;
    phase.unexpected(e, `${where}: echo`);
  }
}

const FD_MIX: CancelMix = { abort: 0.2, timeout: 0.2 };

/**
 * An SCM_RIGHTS lane: over a Unix stream pair (a new one every 20-100 rounds), each round sends
 * the write end of a fresh pipe with a 16-byte header naming a slice of the corpus; the receiving
 * side adopts the descriptor it got, writes that slice into it and closes it; the sending side
 * reads the pipe to end of stream and checks every byte. A receive that was aborted or timed out
 * must not have taken the message: had it, the descriptor would leak (the fd count at the end)
 * and the round would never finish (a stuck failure).
 */
export async function fdPassingLane(phase: Phase, name: string, index: number, rand: Rand): Promise<void> {
  const loop = phase.loop;
  for (let round = 0; !phase.stopping; round++) {
    const [a, b] = UnixStream.pair({ loop });
    phase.track(a);
    phase.track(b);
    try {
      for (let i = between(rand, 20, 100); i > 0 && !phase.stopping; i--) {
        const seq = phase.counters.fdsPassed;
        const where = `${name} pair ${round} fd ${seq}`;
        phase.doing.set(name, where);
        await phase.breathe();
        const header = makeDatagram(phase, rand, index, seq).subarray(0, HEADER);
        const view = new DataView(header.buffer, header.byteOffset);
        const length = rand() < 0.1 ? 0 : logSize(rand, 32 * 1024);
        view.setUint32(12, length);
        const offset = view.getUint32(8) % (CORPUS_SIZE - length);
        view.setUint32(8, offset);
        const [r, w] = Pipe.create({ loop });
        phase.track(r);
        phase.track(w);
        try {
          const send = async (): Promise<void> => {
            await retrying(phase, rand, FD_MIX, true, "sendFds", `${where}: sendFds`, (options) => a.sendFds([w.fd], header, options));
            phase.done();
            await phase.close(w);
          };
          const receive = async (): Promise<void> => {
            const buf = new Uint8Array(HEADER);
            const got = await retrying(phase, rand, FD_MIX, true, "receiveFds", `${where}: receiveFds`, (options) => b.receiveFds(buf, 2, options));
            phase.done();
            const passed = got.fds.map((fd) => phase.track(FileDescriptor.from(fd, { loop })));
            try {
              if (got.bytes !== HEADER || firstDifference(buf, header) >= 0 || passed.length !== 1 || got.truncated) {
                fail(phase, `checksum: ${where}: received ${got.bytes} header bytes and ${passed.length} fds${got.truncated ? " (truncated)" : ""}, expected the ${HEADER}-byte header of fd ${seq} with 1 fd`);
              }
              await passed[0]!.writeAll(phase.corpus.subarray(offset, offset + length), { timeout: STUCK_MS });
              phase.done();
              phase.counters.fdsPassed++;
            } finally {
              for (const f of passed) await phase.close(f);
            }
          };
          const drain = async (): Promise<void> => {
            const expected = new Expected([phase.corpus.subarray(offset, offset + length)], `${where}: pipe`);
            const buf = new Uint8Array(16 * 1024);
            for (;;) {
              // A fresh size for every try, cancelled ones included.
              const n = await retrying(phase, rand, FD_MIX, true, "read", `${where}: pipe read`, (options) => r.read(buf.subarray(0, logSize(rand, buf.length)), options));
              phase.done();
              if (n === 0) break;
              expected.check(phase, buf.subarray(0, n));
            }
            if (expected.received !== length) fail(phase, `${where}: the pipe ended after ${expected.received} of ${length} bytes`);
          };
          if (phase.blocking) {
            await send();
            await receive();
            await drain();
          } else {
            await Promise.all([drain(), receive(), send()]);
          }
        } finally {
          await phase.close(w);
          await phase.close(r);
        }
      }
    } finally {
      await phase.close(a);
      await phase.close(b);
    }
  }
  phase.doing.delete(name);
}
