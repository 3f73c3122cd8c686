import { test } from "node:test";
import assert from "node:assert/strict";
import { TimerHeap } from "../../dist/loop/timers.js";

/** mulberry32: a seeded PRNG, so a failing order can be replayed. Returns floats in [0, 1). */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Checks the fields every scheduled timer exposes, then drains the heap and checks that exactly
 * the `live` timers fire, in (deadline, insertion) order. `live` is in insertion order.
 */
function drainAndCheck(heap, live) {
  assert.equal(heap.size, live.length);
  const seen = new Set();
  for (const t of live) {
    assert.ok(t.index >= 0 && t.index < live.length, `index ${t.index} out of range`);
    assert.ok(!seen.has(t.index), `index ${t.index} used twice`);
    seen.add(t.index);
  }
  const order = new Map(live.map((t, i) => [t, i]));
  const fired = [];
  for (const t of live) t.callback = () => fired.push(t);
  assert.equal(heap.runDue(Infinity), live.length);
  assert.equal(fired.length, live.length);
  for (let i = 1; i < fired.length; i++) {
    const a = fired[i - 1];
    const b = fired[i];
    assert.ok(a.deadline <= b.deadline, `deadline ${a.deadline} fired before ${b.deadline}`);
    if (a.deadline === b.deadline) assert.ok(order.get(a) < order.get(b), "tie fired out of order");
  }
  for (const t of fired) assert.equal(t.index, -1);
  assert.equal(heap.size, 0);
  assert.equal(heap.refCount, 0);
}

test("TimerHeap.runDue() fires random deadlines in order, ties in insertion order", () => {
  const rand = prng(1);
  const heap = new TimerHeap();
  const fired = [];
  const ids = [];
  for (let i = 0; i < 10_000; i++) {
    // Few distinct deadlines, so ties are common.
    const deadline = Math.floor(rand() * 500);
    ids.push(deadline);
    heap.add(deadline, () => fired.push(i));
  }
  assert.equal(heap.size, 10_000);
  assert.equal(heap.runDue(1_000), 10_000);
  assert.equal(fired.length, 10_000);
  for (let k = 1; k < fired.length; k++) {
    const a = fired[k - 1];
    const b = fired[k];
    assert.ok(ids[a] <= ids[b], "deadlines not non-decreasing");
    if (ids[a] === ids[b]) assert.ok(a < b, "tie not in insertion order");
  }
});

test("TimerHeap.runDue() runs only timers with deadline <= now", () => {
  const heap = new TimerHeap();
  const fired = [];
  for (const d of [30, 10, 20, 10.5]) heap.add(d, () => fired.push(d));
  assert.equal(heap.runDue(20), 3);
  assert.deepEqual(fired, [10, 10.5, 20]);
  assert.equal(heap.size, 1);
  assert.equal(heap.nextDeadline(), 30);
  assert.equal(heap.runDue(29.9), 0);
});

test("TimerHeap.runDue() stops after limit callbacks", () => {
  const heap = new TimerHeap();
  const fired = [];
  for (let i = 0; i < 5; i++) heap.add(i, () => fired.push(i));
  assert.equal(heap.runDue(10, 2), 2);
  assert.deepEqual(fired, [0, 1]);
  assert.equal(heap.size, 3);
  assert.equal(heap.runDue(10), 3);
  assert.deepEqual(fired, [0, 1, 2, 3, 4]);
});

test("TimerHeap.cancel() removes the first, a middle and the last timer", () => {
  const heap = new TimerHeap();
  const fired = [];
  const timers = [];
  for (let i = 0; i < 9; i++) timers.push(heap.add(i * 10, () => fired.push(i)));
  assert.equal(heap.cancel(timers[0]), true);
  assert.equal(heap.cancel(timers[4]), true);
  assert.equal(heap.cancel(timers[8]), true);
  assert.equal(heap.size, 6);
  assert.equal(heap.nextDeadline(), 10);
  heap.runDue(100);
  assert.deepEqual(fired, [1, 2, 3, 5, 6, 7]);
});

test("TimerHeap.cancel() returns false the second time and after firing", () => {
  const heap = new TimerHeap();
  const a = heap.add(1, () => {});
  const b = heap.add(2, () => {});
  assert.equal(heap.cancel(a), true);
  assert.equal(heap.cancel(a), false);
  assert.equal(a.index, -1);
  assert.equal(heap.size, 1);
  heap.runDue(5);
  assert.equal(heap.cancel(b), false);
  assert.equal(heap.size, 0);
  assert.equal(heap.refCount, 0);
});

test("TimerHeap.cancel() rejects a timer from another heap", () => {
  const one = new TimerHeap();
  const two = new TimerHeap();
  const t = one.add(1, () => {});
  two.add(1, () => {});
  assert.equal(two.cancel(t), false);
  assert.equal(two.size, 1);
  assert.equal(one.cancel(t), true);
});

test("TimerHeap.cancel() called by a callback prevents a due timer from running", () => {
  const heap = new TimerHeap();
  const fired = [];
  let later;
  heap.add(1, () => {
    fired.push(1);
    assert.equal(heap.cancel(later), true);
  });
  later = heap.add(2, () => fired.push(2));
  heap.add(3, () => fired.push(3));
  assert.equal(heap.runDue(10), 2);
  assert.deepEqual(fired, [1, 3]);
});

test("TimerHeap.timeout() rounds up and reports due and empty heaps", () => {
  const heap = new TimerHeap();
  assert.equal(heap.timeout(0), -1);
  const t = heap.add(100.3, () => {});
  assert.equal(heap.timeout(100), 1);
  assert.equal(heap.timeout(99.5), 1);
  assert.equal(heap.timeout(90), 11);
  assert.equal(heap.timeout(100.3), 0);
  assert.equal(heap.timeout(200), 0);
  heap.cancel(t);
  assert.equal(heap.timeout(0), -1);
  assert.equal(heap.nextDeadline(), undefined);
});

test("TimerHeap.refCount follows add(), setRef(), cancel() and firing", () => {
  const heap = new TimerHeap();
  const a = heap.add(1, () => {});
  const b = heap.add(2, () => {}, false);
  const c = heap.add(3, () => {});
  assert.equal(heap.refCount, 2);
  heap.setRef(a, false);
  heap.setRef(a, false);
  assert.equal(heap.refCount, 1);
  heap.setRef(b, true);
  assert.equal(heap.refCount, 2);
  assert.equal(heap.cancel(c), true);
  assert.equal(heap.refCount, 1);
  heap.setRef(c, true);
  assert.equal(heap.refCount, 1, "setRef() on a cancelled timer must not count it");
  heap.runDue(1);
  assert.equal(heap.refCount, 1);
  heap.runDue(2);
  assert.equal(heap.refCount, 0);
  assert.equal(heap.size, 0);
});

test("TimerHeap.runDue() leaves a due timer added by a callback for the next call", () => {
  const heap = new TimerHeap();
  let runs = 0;
  const rearm = () => {
    runs++;
    heap.add(5, rearm);
  };
  heap.add(5, rearm);
  assert.equal(heap.runDue(10), 1);
  assert.equal(runs, 1);
  assert.equal(heap.size, 1);
  assert.equal(heap.runDue(10), 1);
  assert.equal(runs, 2);
});

test("TimerHeap.runDue() still runs older due timers behind a newly added due one", () => {
  const heap = new TimerHeap();
  const fired = [];
  heap.add(5, () => {
    fired.push("a");
    heap.add(6, () => fired.push("new"));
    assert.equal(heap.size, 2);
    assert.equal(heap.nextDeadline(), 6);
    assert.equal(heap.timeout(10), 0);
  });
  heap.add(8, () => fired.push("b"));
  assert.equal(heap.runDue(10), 2);
  assert.deepEqual(fired, ["a", "b"]);
  assert.equal(heap.runDue(10), 1);
  assert.deepEqual(fired, ["a", "b", "new"]);
});

test("TimerHeap.cancel() and setRef() work on a due timer a callback added", () => {
  const heap = new TimerHeap();
  const fired = [];
  heap.add(1, () => {
    const x = heap.add(1, () => fired.push("x"));
    const y = heap.add(0, () => fired.push("y"));
    const z = heap.add(1, () => fired.push("z"));
    heap.setRef(z, false);
    assert.equal(heap.refCount, 2);
    assert.equal(heap.cancel(x), true);
    assert.equal(heap.cancel(x), false);
    assert.equal(heap.refCount, 1);
    assert.equal(heap.size, 2);
    assert.equal(heap.nextDeadline(), 0);
    assert.equal(heap.cancel(y), true);
  });
  heap.runDue(1);
  assert.equal(heap.size, 1);
  assert.equal(heap.refCount, 0);
  heap.runDue(1);
  assert.deepEqual(fired, ["z"]);
});

test("TimerHeap.runDue() runs the rest after a throwing callback, then rethrows the first error", () => {
  const heap = new TimerHeap();
  const fired = [];
  const first = new Error("first");
  heap.add(1, () => fired.push(1));
  heap.add(2, () => {
    throw first;
  });
  heap.add(3, () => fired.push(3));
  heap.add(4, () => {
    throw new Error("second");
  });
  heap.add(5, () => fired.push(5));
  heap.add(50, () => fired.push(50));
  assert.throws(() => heap.runDue(10), (e) => e === first);
  assert.deepEqual(fired, [1, 3, 5]);
  assert.equal(heap.size, 1);
  assert.equal(heap.refCount, 1);
  assert.equal(heap.nextDeadline(), 50);
  assert.equal(heap.runDue(100), 1);
  assert.deepEqual(fired, [1, 3, 5, 50]);
});

test("TimerHeap.runDue() rejects a call from a timer callback", () => {
  const heap = new TimerHeap();
  let inner;
  heap.add(1, () => {
    try {
      heap.runDue(1);
    } catch (e) {
      inner = e;
    }
  });
  heap.add(1, () => {});
  assert.equal(heap.runDue(1), 2);
  assert.match(inner.message, /cannot be called from a timer callback/);
  assert.equal(heap.size, 0);
});

test("TimerHeap.add() rejects a non-finite deadline", () => {
  const heap = new TimerHeap();
  assert.throws(() => heap.add(NaN, () => {}), RangeError);
  assert.throws(() => heap.add(Infinity, () => {}), RangeError);
  assert.equal(heap.size, 0);
  assert.equal(heap.refCount, 0);
});

test("TimerHeap.clear() unschedules everything", () => {
  const heap = new TimerHeap();
  const fired = [];
  const a = heap.add(1, () => fired.push(1));
  heap.add(2, () => fired.push(2), false);
  heap.clear();
  assert.equal(heap.size, 0);
  assert.equal(heap.refCount, 0);
  assert.equal(heap.cancel(a), false);
  assert.equal(heap.runDue(10), 0);
  assert.deepEqual(fired, []);
  heap.add(3, () => fired.push(3));
  assert.equal(heap.runDue(10), 1);
  assert.deepEqual(fired, [3]);
});

test("TimerHeap keeps its invariant through random add(), cancel(), setRef() and runDue()", () => {
  const rand = prng(42);
  const heap = new TimerHeap();
  let live = [];
  let now = 0;
  let refs = 0;
  for (let step = 0; step < 50_000; step++) {
    const r = rand();
    if (r < 0.5 || live.length === 0) {
      const ref = rand() < 0.7;
      live.push(heap.add(now + Math.floor(rand() * 1_000), () => {}, ref));
      if (ref) refs++;
    } else if (r < 0.85) {
      const i = Math.floor(rand() * live.length);
      const t = live[i];
      assert.equal(heap.cancel(t), true);
      if (t.ref) refs--;
      live.splice(i, 1);
    } else if (r < 0.95) {
      const t = live[Math.floor(rand() * live.length)];
      const ref = !t.ref;
      heap.setRef(t, ref);
      refs += ref ? 1 : -1;
    } else {
      now += Math.floor(rand() * 50);
      const due = live.filter((t) => t.deadline <= now);
      assert.equal(heap.runDue(now), due.length);
      for (const t of due) if (t.ref) refs--;
      live = live.filter((t) => t.deadline > now);
    }
    assert.equal(heap.refCount, refs);
  }
  assert.ok(live.length > 100, "the random walk should leave timers to drain");
  drainAndCheck(heap, live);
});

test("TimerHeap drains correctly with half of many timers cancelled", () => {
  const rand = prng(7);
  const heap = new TimerHeap();
  const all = [];
  for (let i = 0; i < 100_000; i++) all.push(heap.add(Math.floor(rand() * 10_000), () => {}));
  const live = [];
  for (const t of all) {
    if (rand() < 0.5) assert.equal(heap.cancel(t), true);
    else live.push(t);
  }
  drainAndCheck(heap, live);
});
