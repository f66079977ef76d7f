/**
 * The etcd coordinator and client run on Deno too (grpc over node:http2): a small program
 * with two consumers on a real etcd runs every task exactly once under `deno run`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { uniqueNamespace } from "./helpers.ts";

const root = join(import.meta.dir, "..", "..");
let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

test("deno run: two consumers on etcd run every task exactly once", async () => {
  const deno = join(root, "node_modules", ".bin", "deno");
  const proc = spawn(
    deno,
    [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-net=127.0.0.1",
      "test/etcd/deno-program.ts",
      etcd.endpoint,
      uniqueNamespace("deno"),
    ],
    {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  proc.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
  const code = await new Promise<number | null>((resolve) => proc.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  if (code !== 0) console.error(out);
  expect(out).toContain("deno etcd: 20 tasks ran, each once: true, left in etcd: 0");
  expect(code).toBe(0);
}, 130_000);
