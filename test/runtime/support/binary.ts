/**
 * The compiled `metafora` binary for end-to-end tests: built once with `bun build --compile`
 * into os.tmpdir() and reused across test files and runs until a source file changes (the
 * cache key is the newest mtime under src/ plus package.json).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../../..");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The flags `npm run build` uses (package.json), so tests run the binary users get. Bytecode
 * (ESM, for the top-level await in main.ts) saves parsing the ~2 MB bundle at every start.
 */
export const BUILD_FLAGS = ["build", "--compile", "--bytecode", "--format=esm"] as const;

let building: Promise<string> | undefined;

/** Path of an up-to-date compiled binary. */
export function metaforaBinary(): Promise<string> {
  building ??= Promise.resolve().then(build);
  return building;
}

function build(): string {
  const stamp = Math.floor(Math.max(newestMtime(join(REPO, "src")), statSync(join(REPO, "package.json")).mtimeMs));
  // One cache folder per checkout, so two clones on one machine never share a binary.
  const dir = join(tmpdir(), `metafora-test-binary-${createHash("sha256").update(REPO).digest("hex").slice(0, 12)}`);
  mkdirSync(dir, { recursive: true });
  const target = join(dir, `metafora-${stamp}`);
  if (existsSync(target)) return target;
  const partial = `${target}.partial-${process.pid}`;
  const res = spawnSync(process.execPath, [...BUILD_FLAGS, join(REPO, "src/runtime/main.ts"), "--outfile", partial], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 180_000,
  });
  if (res.status !== 0) throw new Error(`bun build --compile failed (${res.status}):\n${res.stdout}\n${res.stderr}`);
  renameSync(partial, target);
  // Older builds are dead weight (~100 MB each).
  for (const f of readdirSync(dir))
    if (f !== `metafora-${stamp}` && !f.includes(".partial-")) rmSync(join(dir, f), { force: true });
  return target;
}
