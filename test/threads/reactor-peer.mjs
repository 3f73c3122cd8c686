// A Worker of test/threads/reactor.test.mjs: builds a Registrator from the handle it is sent and
// re-arms its own pipes, one unique token per re-arm, so that every event the reactor delivers
// names exactly one (worker, sequence number). Even slots are read ends holding one byte
// (READABLE); odd slots are write ends with room (WRITABLE). Slot s is re-armed with sequence
// number k only once the main thread has acknowledged k - slots (ack[slot] = k - slots), so a
// token is never replaced before its event was delivered.
import { parentPort, workerData } from "node:worker_threads";
import { Interest, Registrator } from "../../dist/index.js";
import { close, pipe, write } from "../../dist/sys/posix/fd.js";

const { handle, ack, index, count, slots, base, job } = workerData;

if (job === "register-one") {
  // The handle round trip: register the fd the main thread names, under its token.
  const reg = Registrator.fromHandle(handle);
  reg.register(workerData.fd, workerData.token, Interest.READABLE);
  parentPort.postMessage("registered");
} else if (job === "own-reactor") {
  // A reactor owned by this Worker, with an iteration pending, when the main thread terminates it.
  const { Reactor } = await import("../../dist/index.js");
  const reactor = await Reactor.start({ capacity: 8, selector: workerData.selector });
  void reactor.next();
  parentPort.postMessage("started");
} else if (job === "after-close") {
  let error = null;
  try {
    Registrator.fromHandle(handle).register(workerData.fd, 1, Interest.READABLE);
  } catch (e) {
    error = { name: e.name, code: e.code, message: e.message };
  }
  parentPort.postMessage(error);
} else {
  const acks = new Int32Array(ack);
  const reg = Registrator.fromHandle(handle);
  const pipes = [];
  const fds = [];
  for (let s = 0; s < slots; s++) {
    const [r, w] = pipe(true);
    pipes.push(r, w);
    if (s % 2 === 0) {
      write(w, new Uint8Array([1]));
      fds.push(r);
    } else {
      fds.push(w);
    }
  }
  const interestOf = (s) => (s % 2 === 0 ? Interest.READABLE : Interest.WRITABLE);
  try {
    for (let k = 0; k < count; k++) {
      const s = k % slots;
      const at = index * slots + s;
      if (k >= slots) {
        // Bounded: a token that never arrives fails the worker instead of hanging it.
        for (let v = Atomics.load(acks, at); v !== k - slots; v = Atomics.load(acks, at)) {
          if (Atomics.wait(acks, at, v, 20_000) === "timed-out") throw new Error(`worker ${index}: sequence ${k - slots} was never acknowledged`);
        }
        reg.reregister(fds[s], base + k, interestOf(s));
      } else {
        reg.register(fds[s], base + k, interestOf(s));
      }
    }
    // Wait for the last events too, so the pipes are closed only after them.
    for (let s = 0; s < slots && s < count; s++) {
      const last = count - 1 - ((count - 1 - s) % slots);
      const at = index * slots + s;
      for (let v = Atomics.load(acks, at); v !== last; v = Atomics.load(acks, at)) {
        if (Atomics.wait(acks, at, v, 20_000) === "timed-out") throw new Error(`worker ${index}: sequence ${last} was never acknowledged`);
      }
      reg.deregister(fds[s]);
    }
  } finally {
    for (const fd of pipes) close(fd);
  }
  parentPort.postMessage("done");
}
