/**
 * Runs the `evloop` command (the package's `bin`) as a child of this Node, for the tools' tests.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
/** The CLI's entry point, as package.json's `bin` names it. */
export const cli = join(root, JSON.parse(readFileSync(join(root, "package.json"), "utf8")).bin.evloop);

/**
 * Runs `evloop <args>` in the package root; resolves with `{ code, stdout, stderr }`, or rejects
 * if it outlives `timeoutMs` (it is then sent `killSignal`: SIGINT lets the bench stop its servers).
 */
export function runCli(args, { timeoutMs, env = {}, killSignal = "SIGINT" }) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill(killSignal);
      reject(new Error(`evloop ${args[0]} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
