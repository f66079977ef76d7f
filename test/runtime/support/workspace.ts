/**
 * A throwaway working folder outside the repository, the way a user runs the binary: a
 * handler folder, optionally a config file, and nothing else (no node_modules).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Workspace {
  readonly dir: string;
  readonly handlers: string;
  writeHandler(file: string, source: string): void;
  writeConfig(toml: string, path?: string): string;
  remove(): void;
}

export function makeWorkspace(handlers: Record<string, string> = {}): Workspace {
  const dir = mkdtempSync(join(tmpdir(), "metafora-e2e-"));
  const handlerDir = join(dir, "handlers");
  mkdirSync(handlerDir);
  const ws: Workspace = {
    dir,
    handlers: handlerDir,
    writeHandler(file, source) {
      writeFileSync(join(handlerDir, file), source);
    },
    writeConfig(toml, path = "config/metafora.toml") {
      const full = join(dir, path);
      mkdirSync(join(full, ".."), { recursive: true });
      writeFileSync(full, toml);
      return full;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const [file, source] of Object.entries(handlers)) ws.writeHandler(file, source);
  return ws;
}

/** Handler sources the e2e tests use. Each imports "metafora" like a user's handler would. */
export const HANDLERS = {
  /** Runs until stopped, then releases. */
  worker: `
import { defineHandler } from "metafora";
export default defineHandler({
  async run(task, ctx) {
    ctx.log.info("started " + task.id + " token " + ctx.token);
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    ctx.log.info("stopping " + task.id);
    return "release";
  },
});
`,
  /** Ignores its stop signal for an hour. */
  stubborn: `
export default {
  async run(task, ctx) {
    ctx.log.info("started " + task.id);
    await new Promise((resolve) => setTimeout(resolve, 3_600_000));
    return "release";
  },
};
`,
  /** Finishes at once. */
  quick: `
export default async function (task, ctx) {
  ctx.log.info("quick " + task.id);
  return "done";
}
`,
};
