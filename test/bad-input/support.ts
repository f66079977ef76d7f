/**
 * Shared pieces of the bad-input matrix: the compiled binary, a fingerprint of a folder (to
 * show a failed command changed nothing on disk), and the one assertion every case makes:
 * the exit code (or HTTP status), and a message that names the thing and says what is expected.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect } from "bun:test";

export { metaforaBinary, REPO } from "../runtime/support/binary.ts";
export { runCli, startNode, childEnv, type CliResult } from "../runtime/support/node.ts";
export { makeWorkspace, type Workspace } from "../runtime/support/workspace.ts";

/** Hash of every file under `dir` (names and contents), to prove nothing there changed. */
export function fingerprint(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(`${p}\n`).update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest("hex");
}

/** The message names each of `mentions` (strings or patterns). */
export function expectMentions(text: string, mentions: readonly (string | RegExp)[], what: string): void {
  for (const m of mentions) {
    if (typeof m === "string")
      expect(text, `${what}: expected the message to mention ${JSON.stringify(m)}`).toContain(m);
    else expect(text, `${what}: expected the message to match ${String(m)}`).toMatch(m);
  }
}

/** No stack frames of bundled or library code in what an operator sees for an expected failure. */
export function expectNoStack(text: string, what: string): void {
  expect(text, `${what}: no stack trace`).not.toMatch(/\n\s+at .+:\d+:\d+\)?/);
}

/** Run `fn` over `items` with at most `limit` at once (the machine has 2 cores). */
export async function bounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
