/**
 * The body of the helper thread that waits on a completion port for a guest loop (see
 * `remote-wait.ts`, which starts it, and `RemoteWait` in `loop/completion.ts`, the protocol).
 *
 * It repeats: wait until the loop has taken the last batch (`state[0]` is 0); block in
 * GetQueuedCompletionStatusEx(INFINITE); publish the count in `state[0]` and wake Node's main
 * thread with `uv_async_send` on the uv_async_t the main thread made. It ends when `state[1]` is
 * 1, checked before and after each wait (the stopper also posts a packet to end the wait, and
 * notifies `state[0]` to end the other one), or when the port fails (closed under it). Ending,
 * it stores 1 in `state[2]` and notifies: from then on it touches neither the entries nor the
 * port, and the loop may free them.
 *
 * It imports only the Windows bindings and the FFI: no loop, no driver, nothing that binds the
 * main thread's state.
 */
import { workerData } from "node:worker_threads";
import { ffi } from "../ffi/runtime/load.js";
import type { SymbolTable } from "../ffi/types.js";
import { windows } from "../sys/windows/api.js";
import { WIN } from "../sys/windows/constants.js";
import { heapAlloc, heapFree } from "../sys/windows/memory.js";

/** What `remote-wait.ts` passes as `workerData`. */
export interface RemoteWaitData {
  readonly port: bigint;
  readonly entries: bigint;
  readonly capacity: number;
  readonly state: Int32Array;
  /** The uv_async_t on the main thread's loop. */
  readonly async: bigint;
}

const UV = {
  // int uv_async_send(uv_async_t *handle) — the one libuv function safe from any thread
  uv_async_send: { result: "i32", params: ["pointer"] },
} as const satisfies SymbolTable;

const PENDING = 0;
const STOP = 1;
const STOPPED = 2;

function serve(data: RemoteWaitData): void {
  const { kernel32 } = windows();
  const uv = ffi.open(null, UV);
  const { port, entries, capacity, state, async } = data;
  // ULONG the wait writes its count to: ours, freed when we end.
  const removed = heapAlloc(4);
  const count = new DataView(ffi.view(removed, 4));
  try {
    for (;;) {
      // The loop is reading the last batch from `entries`: never overwrite it.
      for (let n = Atomics.load(state, PENDING); n !== 0 && Atomics.load(state, STOP) === 0; n = Atomics.load(state, PENDING)) {
        Atomics.wait(state, PENDING, n);
      }
      if (Atomics.load(state, STOP) === 1) return;
      // SAFETY: `entries` is the loop's native memory for `capacity` OVERLAPPED_ENTRY records; the
      // loop frees it only after this thread has stopped, and reads it only while state[0] is
      // not 0, which is never during this call.
      const ok = kernel32.GetQueuedCompletionStatusEx(port, entries, capacity, removed, WIN.INFINITE, 0);
      if (Atomics.load(state, STOP) === 1) return;
      if (ok === 0) throw new Error(`GetQueuedCompletionStatusEx failed with Windows error ${kernel32.GetLastError()}`);
      Atomics.store(state, PENDING, count.getUint32(0, true));
      Atomics.notify(state, PENDING);
      // SAFETY: the main thread closes the uv_async_t only after this thread has exited.
      uv.uv_async_send(async);
    }
  } finally {
    heapFree(removed);
    Atomics.store(state, STOPPED, 1);
    Atomics.notify(state, STOPPED);
  }
}

serve(workerData as RemoteWaitData);
