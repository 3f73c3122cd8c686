/** evloop's own version, read from its package.json. */
import { createRequire } from "node:module";

/** The version in package.json, or `"unknown"` when it cannot be read. */
export function packageVersion(): string {
  try {
    // Through the package's own name (the exports map lists ./package.json), wherever this file is built to.
    const pkg = createRequire(import.meta.url)("evloop/package.json") as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
