/** evloop's own version, read from its package.json (two levels up from `dist/cli/`). */
import { readFileSync } from "node:fs";

/** The version in package.json, or `"unknown"` when the file is not beside the build. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
