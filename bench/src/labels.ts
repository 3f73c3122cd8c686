/**
 * Server labels: how the suite names a server and what a name says about it. One place writes
 * them (servers.ts, through {@link evloopLabel}) and the reports read them back here, so a label's
 * shape is decided once:
 *
 * - `evloop-<backend>-<guest|owner>`: evloop's echo server on Node;
 * - `evloop-<backend>-<guest|owner>@bun`, `…@deno`: the same server file run by Bun or Deno;
 * - `…@base`: a `--baseline` checkout's server (Node only; see baseline.ts);
 * - `node:net`, `bun`, `deno`: each runtime's own sockets (node:net, Bun.listen, Deno.listen);
 * - `c-epoll`, `c-io_uring`: the C servers.
 */
import { BASELINE_SUFFIX } from "./baseline.js";

/** The runtimes besides Node that evloop's echo server also runs on, as their labels end. */
export const RUNTIMES = ["bun", "deno"] as const;

/** A runtime evloop's echo server runs on besides Node. */
export type Runtime = (typeof RUNTIMES)[number];

/** The label of each runtime's own echo server: its own sockets, the runtime's reference. */
export const OWN_SOCKETS: Readonly<Record<"node" | Runtime, string>> = { node: "node:net", bun: "bun", deno: "deno" };

/**
 * The label of evloop's echo server on `backend` in `mode`, run by Node or by `runtime`.
 *
 * @example
 * ```ts
 * evloopLabel("io_uring", "guest"); // "evloop-io_uring-guest"
 * evloopLabel("epoll", "owner", "deno"); // "evloop-epoll-owner@deno"
 * ```
 */
export function evloopLabel(backend: string, mode: "guest" | "owner", runtime?: Runtime): string {
  return `evloop-${backend}-${mode}${runtime === undefined ? "" : `@${runtime}`}`;
}

/** What an evloop server's label says; see {@link describeEvloop}. */
export interface EvloopLabel {
  readonly backend: string;
  readonly mode: "guest" | "owner";
  /** The runtime that ran it. */
  readonly runtime: "node" | Runtime;
  /** Whether it is a `--baseline` checkout's server. */
  readonly baseline: boolean;
}

/**
 * Reads an evloop server's label back; undefined for any other server.
 *
 * @example
 * ```ts
 * describeEvloop("evloop-io_uring-owner@bun"); // { backend: "io_uring", mode: "owner", runtime: "bun", baseline: false }
 * describeEvloop("node:net"); // undefined
 * ```
 */
export function describeEvloop(label: string): EvloopLabel | undefined {
  const baseline = label.endsWith(BASELINE_SUFFIX);
  const rest = baseline ? label.slice(0, -BASELINE_SUFFIX.length) : label;
  const match = /^evloop-(.+)-(guest|owner)(?:@(bun|deno))?$/.exec(rest);
  if (match === null) return undefined;
  const runtime = (match[3] as Runtime | undefined) ?? "node";
  return { backend: match[1]!, mode: match[2] as "guest" | "owner", runtime, baseline };
}

/**
 * The label of the server an evloop server is compared with on its own runtime (`node:net` for
 * Node, `bun` for `…@bun`, `deno` for `…@deno`); undefined for any other server.
 *
 * @example
 * ```ts
 * ownSocketsFor("evloop-io_uring-guest@bun"); // "bun"
 * ```
 */
export function ownSocketsFor(label: string): string | undefined {
  const evloop = describeEvloop(label);
  return evloop === undefined ? undefined : OWN_SOCKETS[evloop.runtime];
}
