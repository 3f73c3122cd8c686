/**
 * Command-line parsing for the subcommands: `node:util`'s parseArgs, with its errors and ours
 * turned into {@link UsageError}, which `main` reports with exit code 2.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake on the command line (exit code 2), as opposed to a failure while running (1). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** parseArgs, strict, with its errors as UsageErrors. */
export function parseOptions<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) throw new UsageError((e as Error).message);
    throw e;
  }
}

/**
 * An option's value as a number of at least `min`; `integer` rejects fractions. Missing → the
 * default.
 */
export function numberOption(value: string | undefined, name: string, fallback: number, min: number, integer = true): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"} of at least ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}
