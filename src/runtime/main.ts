#!/usr/bin/env bun
/**
 * Entry point of the `metafora` executable (also `bun src/runtime/main.ts`, and under Deno:
 * `deno run -A --import-map src/runtime/deno-import-map.json src/runtime/main.ts`). Exits with the code the command chose
 * (exit-codes.ts); `run` exits explicitly because handlers that ignored shutdown may still hold
 * the event loop open.
 */
import { versionOnly } from "./version.ts";

// `metafora version` answers before the CLI (cac, zod, the config, the operator commands) loads.
const quick = versionOnly(process.argv.slice(2));
if (quick !== undefined) {
  process.stdout.write(quick);
  process.exit(0);
}
const { createCli } = await import("./cli.ts");
const cli = createCli({
  args: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
});
const code = await cli.run();
// Let buffered output drain before exiting.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
process.exit(code);
