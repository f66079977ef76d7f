/**
 * Runtime start-up: binary size, and time from exec to /readyz for the compiled binary with
 * the embedded coordinator and with etcd (real etcd on loopback). Baseline in the same run:
 * exec to exit of `metafora version` (the cost of starting the binary at all).
 *
 *   bun bench/runtime-startup.ts [runs=5]
 */
import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { startEtcd } from "../test/support/etcd.ts";
import { freePort } from "../test/support/ports.ts";
import { metaforaBinary } from "../test/runtime/support/binary.ts";
import { childEnv, runCli, startNode } from "../test/runtime/support/node.ts";
import { HANDLERS, makeWorkspace } from "../test/runtime/support/workspace.ts";

const runs = Math.max(1, Math.min(20, Number(process.argv[2] ?? 5)));
const bin = await metaforaBinary();
const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const median = s[Math.floor(s.length / 2)]!;
  return `median ${median.toFixed(0)} ms, min ${s[0]!.toFixed(0)}, max ${s[s.length - 1]!.toFixed(0)} (n=${s.length})`;
}

async function execToExit(): Promise<number> {
  const t0 = performance.now();
  await new Promise<void>((resolve) =>
    spawn(bin, ["version"], { env: childEnv(), stdio: "ignore" }).on("exit", () => resolve()),
  );
  return performance.now() - t0;
}

async function execToReady(env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const node = startNode(bin, { cwd: ws.dir, env: { ...env, METAFORA_HTTP: `127.0.0.1:${port}` } });
  // Poll /readyz tightly (5 ms) so the figure is not dominated by the poll interval.
  for (let i = 0; i < 6000; i++) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = performance.now() - t0;
  node.signal("SIGTERM");
  const exit = await node.exited;
  if (exit.code !== 0) throw new Error(`node exited ${JSON.stringify(exit)}:\n${node.output()}`);
  return ms;
}

console.log(`binary: ${bin}`);
console.log(`binary size: ${(statSync(bin).size / 1024 / 1024).toFixed(1)} MiB`);

const baseline: number[] = [];
for (let i = 0; i < runs; i++) baseline.push(await execToExit());
console.log(`baseline, exec → exit of \`metafora version\`: ${stats(baseline)}`);

const embedded: number[] = [];
for (let i = 0; i < runs; i++)
  embedded.push(await execToReady({ METAFORA_NODE: "bench", METAFORA_DATA_DIR: `${ws.dir}/data-${i}` }));
console.log(`embedded, exec → /readyz 200: ${stats(embedded)}`);

const etcd = await startEtcd();
try {
  const etcdTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    etcdTimes.push(
      await execToReady({
        METAFORA_ETCD_ENDPOINTS: etcd.endpoint,
        METAFORA_NAMESPACE: `/bench-${i}`,
        METAFORA_NODE: "bench",
      }),
    );
  }
  console.log(`etcd, exec → /readyz 200: ${stats(etcdTimes)}`);
  const cli: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = await runCli(bin, ["submit", `worker:cli-${i}`], {
      cwd: ws.dir,
      env: { METAFORA_ETCD_ENDPOINTS: etcd.endpoint, METAFORA_NAMESPACE: "/bench-cli" },
    });
    if (r.code !== 0) throw new Error(r.stderr);
    cli.push(performance.now() - t0);
  }
  console.log(`etcd, one \`metafora submit\` (exec → exit): ${stats(cli)}`);
} finally {
  await etcd.stop();
  ws.remove();
}
