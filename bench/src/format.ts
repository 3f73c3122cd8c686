/**
 * Plain-text formatting shared by the benchmark report and the CLI's own output (`evloop info`,
 * `evloop demo`): numbers with thousands separators and aligned tables. It imports nothing, so
 * cli/ → bench/src/ stays the only direction between the two folders.
 */

/** How a column's cells line up. Numbers read best right-aligned. */
export type Align = "left" | "right";

/** One column of {@link renderTable}. */
export interface Column {
  readonly title: string;
  readonly align?: Align;
}

const GAP = "  ";

/**
 * Renders `rows` under `columns`, each column as wide as its widest cell. Lines carry no
 * trailing spaces, so the output pastes cleanly into Markdown or a terminal.
 *
 * @example
 * ```ts
 * renderTable([{ title: "name" }, { title: "n", align: "right" }], [["a", "1"], ["bb", "22"]]);
 * // "name   n\na      1\nbb    22"
 * ```
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? "";
        return c.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join(GAP)
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join("\n");
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** `1234567.8` → `"1,234,568"`. */
export function formatInteger(n: number): string {
  return Number.isFinite(n) ? integer.format(n) : "–";
}

/**
 * A number with `digits` decimals when it is small and none when it is large, so a column of
 * rates stays readable from 0.05 to 50,000.
 *
 * @example
 * ```ts
 * formatNumber(7.894); // "7.9"
 * formatNumber(1234.5); // "1,235"
 * ```
 */
export function formatNumber(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1000) return formatInteger(n);
  return n.toFixed(Math.abs(n) < 1 && n !== 0 ? Math.max(digits, 2) : digits);
}
