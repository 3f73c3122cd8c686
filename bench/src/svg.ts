/**
 * The benchmark report as a standalone SVG chart, 900 px wide: one panel per echo configuration
 * with a horizontal bar of messages/s per server, and one panel of memory per idle connection.
 *
 * Reading aids: bars are coloured by family (evloop, the runtimes' own sockets, C); `node:net`
 * and `c-epoll` are drawn as dashed reference lines across their panel, so every other bar is
 * read against them; each bar carries its value and its ratio to `node:net` (evloop on Bun or
 * Deno, `…@bun`/`…@deno`, also its ratio to its runtime's own sockets, `bun` or `deno`). Servers
 * keep the same row in every panel, so the eye can follow one down the page. A `--baseline`
 * server's bar sits right under its counterpart's, in the same colour, paler.
 */
import { formatInteger } from "./format.js";
import { BASELINE_SUFFIX } from "./baseline.js";
import { describeEvloop, ownSocketsFor } from "./labels.js";
import { describeConfig, describeMachineLine, familyOf, formatBytes, formatDate, REFERENCES, type Family } from "./report.js";
import type { BenchReport } from "./types.js";

const WIDTH = 900;
const MARGIN = 20;
/** Right edge of the server labels; bars start a little after it. */
const LABEL_RIGHT = 190;
const BAR_LEFT = 200;
/** Least room right of the longest bar for its value and ratio. */
const VALUE_ROOM = 195;
/**
 * A generous width of one character of a bar's value text (11.5 px DejaVu Sans): a panel whose
 * texts are longer (evloop on Bun or Deno has a second ratio) makes more room than VALUE_ROOM.
 */
const VALUE_CHAR_WIDTH = 6.6;
const ROW = 20;
const BAR = 14;
const FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif";

const COLOURS: Record<Family, { readonly fill: string; readonly dark: string }> = {
  evloop: { fill: "#3b7dd8", dark: "#1f4f96" },
  runtime: { fill: "#e8913a", dark: "#a85a12" },
  c: { fill: "#8a9099", dark: "#4a4f57" },
};
const FAMILY_NAMES: Record<Family, string> = { evloop: "evloop, guest mode", runtime: "runtime sockets (node:net, Bun, Deno)", c: "C (the machine's limit)" };
const INK = "#1f2328";
const MUTED = "#656d76";
const GRID = "#e6e8eb";
/** Opacity of a baseline server's bar. */
const BASELINE_OPACITY = 0.5;

/** Escapes text for an SVG text node or attribute. */
function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** `1234567` → `1.2M`, `45000` → `45k`: tick labels. */
function compact(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(1)}`;
}

/** Ticks at 1, 2 or 5 × 10^k, about `count` of them from 0 to at least `max`. */
function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = 0; t < max + step; t += step) ticks.push(t);
  return ticks;
}

function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}"${attrs === "" ? "" : ` ${attrs}`}>${escape(content)}</text>`;
}

/** One row of a panel: a server and its value (NaN: no result). */
interface Bar {
  readonly server: string;
  readonly value: number;
  readonly label: string;
  /** Muted text after the label (the ratio to node:net), or "". */
  readonly note: string;
}

/** A panel of horizontal bars; returns its SVG and height. */
function panel(
  y: number,
  title: string,
  subtitle: string,
  bars: readonly Bar[],
  axis: { readonly ticks: (max: number) => number[]; readonly format: (n: number) => string },
): { readonly svg: string; readonly height: number } {
  const out: string[] = [];
  out.push(text(MARGIN, y + 16, title, `font-size="15" font-weight="bold" fill="${INK}"`));
  out.push(text(MARGIN, y + 33, subtitle, `font-size="11.5" fill="${MUTED}"`));
  const top = y + 58;
  const bottom = top + bars.length * ROW;
  const max = Math.max(0, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const ticks = axis.ticks(max);
  const scaleMax = ticks[ticks.length - 1]!;
  const room = Math.max(VALUE_ROOM, ...bars.map((b) => 12 + (b.label.length + b.note.length) * VALUE_CHAR_WIDTH));
  const barRight = WIDTH - MARGIN - room;
  const xOf = (v: number): number => BAR_LEFT + (v / scaleMax) * (barRight - BAR_LEFT);

  for (const t of ticks) {
    const x = xOf(t);
    out.push(`<line x1="${x.toFixed(1)}" y1="${top - 4}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(x, bottom + 13, axis.format(t), `font-size="10" fill="${MUTED}" text-anchor="middle"`));
  }

  // Layers, bottom to top: bars, reference lines, value labels (whose white halo interrupts a
  // reference line rather than being crossed by it).
  const labels: string[] = [];
  bars.forEach((bar, i) => {
    const rowTop = top + i * ROW;
    const family = familyOf(bar.server);
    const reference = (REFERENCES as readonly string[]).includes(bar.server);
    const weight = reference ? ` font-weight="bold"` : "";
    out.push(text(LABEL_RIGHT, rowTop + BAR - 2, bar.server, `font-size="12" fill="${INK}" text-anchor="end"${weight}`));
    if (!Number.isFinite(bar.value)) {
      labels.push(text(BAR_LEFT + 4, rowTop + BAR - 2, "no result", `font-size="11" fill="${MUTED}" font-style="italic"`));
      return;
    }
    const width = Math.max(1, xOf(bar.value) - BAR_LEFT);
    const { fill, dark } = COLOURS[family];
    const baseline = bar.server.endsWith(BASELINE_SUFFIX);
    const owner = describeEvloop(bar.server)?.mode === "owner";
    const pale = baseline ? ` fill-opacity="${BASELINE_OPACITY}"` : "";
    out.push(
      `<rect x="${BAR_LEFT}" y="${rowTop + (ROW - BAR) / 2 - 2}" width="${width.toFixed(1)}" height="${BAR}" rx="2" fill="${owner ? dark : fill}"${pale}` +
        `${reference ? ` stroke="${dark}" stroke-width="1.5"` : ""}><title>${escape(`${bar.server}: ${bar.label} ${bar.note}`.trimEnd())}</title></rect>`,
    );
    const halo = `paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"`;
    // SVG collapses a leading space inside a tspan, so the gap is a dx.
    const note = bar.note === "" ? "" : `<tspan dx="6" fill="${MUTED}" font-weight="normal">${escape(bar.note)}</tspan>`;
    labels.push(
      `<text x="${(BAR_LEFT + width + 6).toFixed(1)}" y="${(rowTop + BAR - 2).toFixed(1)}" font-size="11.5" fill="${INK}"${weight} ${halo}>${escape(bar.label)}${note}</text>`,
    );
  });

  // Each reference line is named above the first row: the lower one's name to the left of its
  // line and the higher one's to the right, so two close lines stay legible.
  const refs = REFERENCES.flatMap((name) => {
    const bar = bars.find((b) => b.server === name && Number.isFinite(b.value));
    return bar === undefined ? [] : [bar];
  }).sort((a, b) => a.value - b.value);
  refs.forEach((ref, i) => {
    const x = xOf(ref.value);
    const { dark } = COLOURS[familyOf(ref.server)];
    out.push(`<line x1="${x.toFixed(1)}" y1="${top - 12}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="${dark}" stroke-width="1.2" stroke-dasharray="4 3"/>`);
    const anchor = i === 0 && refs.length > 1 ? "end" : "start";
    const dx = anchor === "end" ? -4 : 4;
    out.push(text(x + dx, top - 6, ref.server, `font-size="10" fill="${dark}" text-anchor="${anchor}"`));
  });
  out.push(...labels);
  return { svg: out.join("\n"), height: bottom + 28 - y };
}

/** Servers in the order they first appear in the report, so each keeps its row in every panel. */
function serverOrder(report: BenchReport): string[] {
  return [...new Set([...report.echo.map((m) => m.server), ...report.memory.map((m) => m.server)])];
}

function legend(y: number, baseline: boolean): string {
  const out: string[] = [];
  let x = MARGIN;
  for (const family of ["evloop", "runtime", "c"] as const) {
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" rx="2" fill="${COLOURS[family].fill}"/>`);
    out.push(text(x + 17, y, FAMILY_NAMES[family], `font-size="12" fill="${INK}"`));
    x += 24 + FAMILY_NAMES[family].length * 6.8;
  }
  out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" rx="2" fill="${COLOURS.evloop.dark}"/>`);
  out.push(text(x + 17, y, "evloop owner mode", `font-size="12" fill="${INK}"`));
  if (baseline) {
    x += 24 + "evloop owner mode".length * 6.8;
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" rx="2" fill="${COLOURS.evloop.fill}" fill-opacity="${BASELINE_OPACITY}"/>`);
    out.push(text(x + 17, y, BASELINE_SUFFIX, `font-size="12" fill="${INK}"`));
  }
  return out.join("\n");
}

/**
 * The chart for `report`: a valid standalone SVG document.
 *
 * @example
 * ```ts
 * writeFileSync("bench.svg", renderSvg(report));
 * ```
 */
export function renderSvg(report: BenchReport): string {
  const servers = serverOrder(report);
  const body: string[] = [];
  body.push(text(MARGIN, 34, "evloop echo benchmark — messages per second, higher is better", `font-size="21" font-weight="bold" fill="${INK}"`));
  const mode = report.quick ? "quick mode (a check, not a measurement) · " : "";
  body.push(text(MARGIN, 56, `${describeMachineLine(report.machine)} · ${formatDate(report.date)}`, `font-size="12" fill="${MUTED}"`));
  body.push(
    text(
      MARGIN,
      73,
      `${mode}${report.rounds} round${report.rounds === 1 ? "" : "s"} × ${report.secondsPerRun} s per server, median · dashed lines: node:net and c-epoll`,
      `font-size="12" fill="${MUTED}"`,
    ),
  );
  body.push(legend(100, report.baseline !== null));
  let y = 122;

  for (const config of report.configs) {
    const rows = report.echo.filter((m) => m.config === config.name);
    if (rows.length === 0) continue;
    const rate = (server: string | undefined): number | undefined => rows.find((m) => m.server === server)?.messagesPerSec;
    const ratio = (value: number, server: string | undefined): string => {
      const of = rate(server);
      return of !== undefined && of > 0 ? `${(value / of).toFixed(2)}× ${server}` : "";
    };
    const bars = servers.map((server): Bar => {
      const value = rate(server) ?? Number.NaN;
      // evloop on Bun or Deno is also read against its own runtime's sockets.
      const own = ownSocketsFor(server);
      const notes = [server === "node:net" ? "" : ratio(value, "node:net"), own === "node:net" ? "" : ratio(value, own)];
      return { server, value, label: `${formatInteger(value)}/s`, note: notes.filter((n) => n !== "").join(" · ") };
    });
    const p = panel(y, config.name, describeConfig(config), bars, { ticks: (max) => niceTicks(max), format: compact });
    body.push(p.svg);
    y += p.height + 14;
  }

  if (report.memory.length > 0) {
    const n = Math.max(...report.memory.map((m) => m.idleConnections));
    const bars = servers.map((server): Bar => {
      const value = report.memory.find((m) => m.server === server)?.rssPerConnectionBytes ?? Number.NaN;
      return { server, value, label: formatBytes(value), note: "" };
    });
    // Ticks at round numbers of KiB once the values reach kibibytes, not at 1000-byte steps.
    const byteTicks = (max: number): number[] => (max >= 2048 ? niceTicks(max / 1024).map((t) => t * 1024) : niceTicks(max));
    const p = panel(y, "memory per idle connection — lower is better", `RSS growth with ${formatInteger(n)} idle connections, per connection`, bars, {
      ticks: byteTicks,
      format: (v) => (v === 0 ? "0" : v >= 1024 ? `${+(v / 1024).toFixed(1)} KiB` : `${v} B`),
    });
    body.push(p.svg);
    y += p.height + 14;
  }

  body.push(text(MARGIN, y + 6, report.command, `font-size="11" fill="${MUTED}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace"`));
  const height = Math.ceil(y + 20);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">
<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>
${body.join("\n")}
</svg>
`;
}
