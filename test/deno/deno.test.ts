/**
 * The library runs on Deno: `deno check` type-checks the public entry point (and the cluster
 * program), and `deno run` executes a consumer cluster on the memory coordinator, which
 * exits 0 only if every task ran exactly once. Deno resolves the bare npm imports from
 * node_modules through package.json (no deno.json needed). Permissions the library needs at
 * import: env (consola reads TERM and friends) and read (etcd3 loads its .proto files from
 * node_modules). Nothing else: no net, no write, no subprocess.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const deno = join(root, "node_modules", ".bin", "deno");

async function runDeno(args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn([deno, ...args], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { code, out: `${stdout}\n${stderr}` };
  } finally {
    clearTimeout(timer);
  }
}

test("deno check: src/index.ts and the Deno cluster program type-check", async () => {
  const { code, out } = await runDeno(["check", "src/index.ts", "test/deno/cluster.ts"], 150_000);
  if (code !== 0) console.error(out);
  expect(code).toBe(0);
}, 160_000);

test("deno run: a 3-node consumer cluster on the memory coordinator runs every task exactly once", async () => {
  const { code, out } = await runDeno(["run", "--allow-env", "--allow-read", "test/deno/cluster.ts"], 90_000);
  if (code !== 0) console.error(out);
  expect(out).toContain("deno: 300 tasks");
  expect(out).toContain("OK: every task ran exactly once");
  expect(code).toBe(0);
}, 100_000);
