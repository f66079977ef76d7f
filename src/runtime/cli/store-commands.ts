/**
 * `metafora store check` and `metafora store export`: an operator's tools for the embedded
 * coordinator's database, working on the file directly (no node needs to run, and they work
 * on a database the node refuses to start with):
 *   store check   → what SQLite's integrity check and the row checksums find; exit 0 when
 *                   clean, 78 when damaged (the message names the file)
 *   store export  → JSON lines of every readable task, state, waiting command and checkpoint
 *                   on stdout ({"type":"task","id":…,"props":…}; damaged rows carry
 *                   "damaged": true), a summary on stderr
 */
import type { CAC } from "cac";
import { ConfigError } from "../../errors.ts";
import { silentLogger } from "../../log.ts";
import type { OutputStream } from "./output.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { ExitCode } from "./exit-codes.ts";

export interface StoreCliDeps {
  loadConfig(): Promise<RuntimeConfig>;
  stdout: OutputStream;
  stderr: OutputStream;
  setExitCode(code: number): void;
}

export function registerStoreCommands(cli: CAC, deps: StoreCliDeps): void {
  cli
    .command(
      "store <action>",
      "Embedded coordinator's database: `store check` (integrity and checksums) or `store export` (JSON lines of what is readable)",
    )
    .option("--json", "store check: print the result as JSON")
    .example("metafora store check")
    .example("metafora store export > salvage.jsonl")
    .action(async (action: string, flags: { json?: boolean }) => {
      try {
        if (action !== "check" && action !== "export") {
          deps.stderr.write(`metafora: store ${JSON.stringify(action)}: expected "check" or "export"\n`);
          deps.setExitCode(ExitCode.usage);
          return;
        }
        const config = await deps.loadConfig();
        if (config.coordinator !== "embedded")
          throw new ConfigError(
            `store ${action} works on the embedded coordinator's database; this config uses ${config.coordinator}`,
          );
        const { EmbeddedStore } = await import("../embedded/sqlite-store.ts");
        const store = EmbeddedStore.open(config.dataDir, silentLogger, { salvage: true });
        try {
          if (action === "check") {
            const problems = store.check();
            if (flags.json)
              deps.stdout.write(`${JSON.stringify({ file: store.file, ok: problems.length === 0, problems })}\n`);
            else if (problems.length === 0) deps.stdout.write(`${store.file}: ok\n`);
            else
              deps.stdout.write(
                `${store.file}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}\n`).join("")}`,
              );
            deps.setExitCode(problems.length === 0 ? ExitCode.ok : ExitCode.config);
          } else {
            const rows = store.export((line) => deps.stdout.write(line));
            deps.stderr.write(`exported ${rows} row(s) from ${store.file}\n`);
            deps.setExitCode(ExitCode.ok);
          }
        } finally {
          store.close();
        }
      } catch (err) {
        deps.stderr.write(`metafora: ${(err as Error).message}\n`);
        deps.setExitCode(err instanceof ConfigError ? ExitCode.config : ExitCode.failed);
      }
    });
}
