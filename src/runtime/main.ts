#!/usr/bin/env bun
/**
 * Entry point of the `metafora` executable (also `bun src/runtime/main.ts`, and under Deno:
 * `deno run -A --import-map src/runtime/handlers/deno-import-map.json src/runtime/main.ts`). Exits with the code the command chose
 * (cli/exit-codes.ts); `run` exits explicitly because handlers that ignored shutdown may still hold
 * the event loop open.
 */
import { versionOnly } from "./cli/version.ts";

// `metafora version` answers before the CLI (cac, zod, the config, the operator commands) loads.
const quick = versionOnly(process.argv.slice(2));
if (quick !== undefined) {
  process.stdout.write(quick);
  process.exit(0);
}
const { createCli } = await import("./cli/cli.ts");
const stdout = drainAware(process.stdout);
const stderr = drainAware(process.stderr);
const cli = createCli({
  args: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdout,
  stderr,
});
const code = await cli.run();
// process.exit drops output still queued for a pipe (a big `tasks --json`): wait for it.
await Promise.all([stdout.drained(), stderr.drained()]);
process.exit(code);

/** A stream wrapper that remembers whether a write is still queued (write returned false). */
function drainAware(stream: NodeJS.WriteStream): { write(chunk: string): boolean; drained(): Promise<void> } {
  let queued = false;
  stream.on("drain", () => (queued = false));
  return {
    write(chunk: string) {
      const ok = stream.write(chunk);
      if (!ok) queued = true;
      return ok;
    },
    drained: () => (queued ? new Promise<void>((resolve) => stream.once("drain", () => resolve())) : Promise.resolve()),
  };
}
