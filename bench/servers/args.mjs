// The command line the node:net, Bun and Deno echo servers share: `[--port P]` (0 = any).
export function parsePort(argv) {
  let port = 0;
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] !== "--port") throw new Error(`unknown argument ${argv[i]}`);
    port = Number(argv[i + 1]);
  }
  return port;
}
