/** The version printed by `metafora version` and logged at start-up (from package.json, bundled into the binary). */
import pkg from "../../../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

/** "bun 1.4.4", "deno 2.9.6" or "node v22…": what runs this process. */
export function runtimeName(): string {
  const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  if (g.Bun) return `bun ${g.Bun.version}`;
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  return `node ${process.version}`;
}

/** What `metafora version` prints. */
export function versionText(json: boolean): string {
  return json
    ? `${JSON.stringify({ version: VERSION, runtime: runtimeName() })}\n`
    : `metafora ${VERSION} (${runtimeName()})\n`;
}

/**
 * The version text when the arguments ask for nothing but the version (`version`,
 * `version --json`, `--version`, `-v`), so main.ts answers without loading the CLI (cac, zod,
 * config, operator commands). Anything else goes through the CLI.
 */
export function versionOnly(args: readonly string[]): string | undefined {
  const [first, ...rest] = args;
  if (args.length === 1 && (first === "version" || first === "--version" || first === "-v")) return versionText(false);
  if (first === "version" && rest.length === 1 && rest[0] === "--json") return versionText(true);
  return undefined;
}
