#!/usr/bin/env node
/**
 * The `evloop` command: `evloop <command> [options]`.
 *
 * Commands are imported only when run, so `evloop help` works even where the FFI layer cannot
 * load, and a mistake on the command line is reported without touching the kernel.
 */
import { UsageError } from "./args.js";
import { packageVersion } from "./version.js";

interface Command {
  readonly summary: string;
  readonly load: () => Promise<{ readonly usage: string; run(argv: readonly string[]): number | Promise<number> }>;
}

const COMMANDS: Record<string, Command> = {
  info: {
    summary: "backends, runtime, FFI, kernel, and which backend is the default",
    load: async () => {
      const m = await import("./info.js");
      return { usage: m.usage, run: m.runInfo };
    },
  },
  demo: {
    summary: "echo server on evloop vs node:net, same client, side by side",
    load: async () => {
      const m = await import("./demo.js");
      return { usage: m.usage, run: m.runDemo };
    },
  },
  bench: {
    summary: "the benchmark suite: echo servers under a C client, memory, loop internals",
    load: async () => {
      const m = await import("./bench.js");
      return { usage: m.usage, run: m.runBenchCommand };
    },
  },
  soak: {
    summary: "mixed traffic, aborts, timeouts and churn on every backend; checks every byte and leaks",
    load: async () => {
      const m = await import("./soak.js");
      return { usage: m.usage, run: m.runSoak };
    },
  },
};

function help(): string {
  const entries: [string, string][] = Object.entries(COMMANDS).map(([name, c]) => [name, c.summary]);
  entries.push(["help", "this list; `evloop help <command>` for a command's options"]);
  const width = Math.max(...entries.map(([name]) => name.length));
  const list = entries.map(([name, summary]) => `  ${name.padEnd(width)}   ${summary}`).join("\n");
  return `evloop ${packageVersion()} — an I/O event loop on io_uring, epoll, kqueue, IOCP and poll(2)

usage: evloop <command> [options]

commands:
${list}

environment:
  EVLOOP_BACKEND=name   force a backend (io_uring, epoll, poll, blocking, kqueue, iocp)
  EVLOOP_DEBUG=1        explain backend selection on stderr`;
}

const isHelpFlag = (arg: string | undefined): boolean => arg === "--help" || arg === "-h";

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || isHelpFlag(name)) {
    const topic = name === "help" ? rest[0] : undefined;
    if (topic === undefined) {
      console.log(help());
      return 0;
    }
    const command = COMMANDS[topic];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
    console.log((await command.load()).usage);
    return 0;
  }
  if (name === "--version" || name === "-v") {
    console.log(packageVersion());
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  const loaded = await command.load();
  if (rest.some(isHelpFlag)) {
    console.log(loaded.usage);
    return 0;
  }
  return loaded.run(rest);
}

// process.exitCode rather than process.exit(): the process must end because nothing is left
// running, which is part of what `evloop demo` shows.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`evloop: ${e.message}\nrun \`evloop help\` for the list of commands and options`);
      process.exitCode = 2;
      return;
    }
    console.error(`evloop: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  },
);
