/**
 * Where the package's non-TypeScript files are (bench/c, bench/servers, node_modules), found
 * through the package's own name rather than a count of `../` from the compiled file, so it
 * holds wherever the build output sits and in an installed copy alike.
 */
import { createRequire } from "node:module";
import path from "node:path";

/**
 * The directory holding evloop's package.json: the checkout, or `node_modules/evloop` when
 * installed. `evloop/package.json` is in the exports map, so the self-reference resolves.
 */
export const PACKAGE_ROOT: string = path.dirname(createRequire(import.meta.url).resolve("evloop/package.json"));

/** The echo servers (and the runtime probe) the suite runs: `bench/servers/`. */
export const SERVERS_DIR: string = path.join(PACKAGE_ROOT, "bench", "servers");
