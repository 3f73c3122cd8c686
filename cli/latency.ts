/**
 * A latency histogram with bounded memory and ~1.6 % resolution.
 *
 * Why not keep every sample: an echo run completes hundreds of thousands of round trips per
 * second, and a longer benchmark would hold tens of megabytes of samples only to sort them once.
 * Instead each sample lands in a log-linear bucket (HdrHistogram's layout): exact below 64 ns,
 * then 64 buckets per power of two, so any percentile is within 1/64 of the true value and
 * recording is a few arithmetic operations with no allocation.
 */

/** Percentiles and extremes of a set of round trips, in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
/** 2^40 ns is about 18 minutes; slower round trips are clamped into the last bucket. */
const MAX_EXPONENT = 40;
const BUCKETS = SUB + (MAX_EXPONENT - SUB_BITS + 1) * SUB;

/** Collects round-trip times; see the module comment for the bucket layout. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumNs = 0;
  #minNs = Infinity;
  #maxNs = 0;

  /** Number of samples recorded. */
  get count(): number {
    return this.#count;
  }

  /** Records one sample given in milliseconds (the unit of `performance.now()`). */
  recordMs(ms: number): void {
    const ns = Math.max(0, Math.round(ms * 1e6));
    this.#counts[indexOf(ns)]!++;
    this.#count++;
    this.#sumNs += ns;
    if (ns < this.#minNs) this.#minNs = ns;
    if (ns > this.#maxNs) this.#maxNs = ns;
  }

  /** The value at percentile `p` (0–100), in microseconds; NaN when empty. */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) {
        // The bucket's midpoint, but never outside what was actually observed.
        const ns = Math.min(this.#maxNs, Math.max(this.#minNs, midpointOf(i)));
        return ns / 1000;
      }
    }
    return this.#maxNs / 1000;
  }

  /** The usual figures in one object. */
  summary(): LatencySummary {
    const empty = this.#count === 0;
    return {
      count: this.#count,
      min: empty ? NaN : this.#minNs / 1000,
      mean: empty ? NaN : this.#sumNs / this.#count / 1000,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
      max: empty ? NaN : this.#maxNs / 1000,
    };
  }
}

function indexOf(ns: number): number {
  if (ns < SUB) return ns;
  const exponent = Math.min(MAX_EXPONENT, Math.floor(Math.log2(ns)));
  const base = 2 ** exponent;
  // log2 may round across a power of two; clamping keeps the index inside the octave.
  const position = Math.min(SUB - 1, Math.max(0, Math.floor((ns / base - 1) * SUB)));
  return SUB + (exponent - SUB_BITS) * SUB + position;
}

function midpointOf(index: number): number {
  if (index < SUB) return index;
  const exponent = SUB_BITS + Math.floor((index - SUB) / SUB);
  const position = (index - SUB) % SUB;
  const width = 2 ** exponent / SUB;
  return 2 ** exponent + (position + 0.5) * width;
}
