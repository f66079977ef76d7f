/**
 * Memory of the compiled runtime: RSS and peak RSS (VmHWM) of a `metafora run` node when idle,
 * then with 10,000 running tasks (idle handlers waiting on their signal). Also reports the
 * durable submit rate through the node's HTTP API (each submit journaled + fdatasync'ed before
 * the 201) and how long until all tasks run. Baseline in the same run: the idle node.
 *
 *   bun bench/runtime-memory.ts [tasks=10000] [embedded|etcd]
 */
import { readFileSync } from "node:fs";
import { startEtcd, type EtcdServer } from "../test/support/etcd.ts";
import { freePort } from "../test/support/ports.ts";
import { metaforaBinary } from "../test/runtime/support/binary.ts";
import { startNode } from "../test/runtime/support/node.ts";
import { HANDLERS, makeWorkspace } from "../test/runtime/support/workspace.ts";

const total = Math.max(1, Math.min(50_000, Number(process.argv[2] ?? 10_000)));
const mode = process.argv[3] === "etcd" ? "etcd" : "embedded";
const bin = await metaforaBinary();
const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
let etcd: EtcdServer | undefined;
if (mode === "etcd") etcd = await startEtcd();

function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}
const mib = (x: number) => `${x.toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const env: Record<string, string> = {
  METAFORA_HTTP: `127.0.0.1:${port}`,
  METAFORA_NODE: "bench",
  METAFORA_LOG_LEVEL: "warn",
};
if (etcd)
  Object.assign(env, { METAFORA_ETCD_ENDPOINTS: etcd.endpoint, METAFORA_NAMESPACE: `/bench-mem-${Date.now()}` });
const node = startNode(bin, { cwd: ws.dir, env });
try {
  await node.waitReady(url, 60_000);
  await sleep(2000); // let start-up garbage settle
  const idle = memory(node.pid);
  console.log(`${mode}: idle node: RSS ${mib(idle.rss)}, peak ${mib(idle.peak)}`);

  const t0 = performance.now();
  let next = 0;
  const submitter = async (): Promise<void> => {
    while (next < total) {
      const id = `worker:t${next++}`;
      const res = await fetch(`${url}/api/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id }),
      });
      if (res.status !== 201) throw new Error(`submit ${id}: ${res.status} ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, submitter));
  const submitted = performance.now() - t0;
  console.log(
    `${mode}: ${total} submits over HTTP (32 concurrent): ${(submitted / 1000).toFixed(2)} s = ${Math.round(total / (submitted / 1000))}/s`,
  );

  let running = 0;
  for (let i = 0; i < 1200 && running < total; i++) {
    const text = await (await fetch(`${url}/metrics`)).text();
    running = 0;
    for (const m of text.matchAll(/^metafora_tasks_running\{[^}]*\} (\d+)/gm)) running += Number(m[1]);
    if (running < total) await sleep(250);
  }
  console.log(`${mode}: ${running} running ${((performance.now() - t0) / 1000).toFixed(2)} s after the first submit`);
  await sleep(2000);
  const loaded = memory(node.pid);
  console.log(`${mode}: with ${running} running tasks: RSS ${mib(loaded.rss)}, peak ${mib(loaded.peak)}`);
  console.log(
    `${mode}: growth per running task: ${(((loaded.rss - idle.rss) * 1024 * 1024) / Math.max(1, running) / 1024).toFixed(1)} KiB (RSS)`,
  );

  const t1 = performance.now();
  node.signal("SIGTERM");
  const exit = await node.exited;
  console.log(
    `${mode}: graceful shutdown of ${running} tasks: exit ${exit.code} after ${((performance.now() - t1) / 1000).toFixed(2)} s`,
  );
} finally {
  await node.stop();
  await etcd?.stop();
  ws.remove();
}
