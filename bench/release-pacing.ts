/**
 * Release pacing: what one task whose handler returns "release" at once costs.
 *
 *   bun bench/release-pacing.ts
 *
 * Baseline (same run): pacing off (releasePacing.within = 0), the behaviour before pacing
 * existed: the node claims the task again at once, forever. Then the defaults (quick release
 * within 1 s → back off 1 s, 2 s, 4 s, … up to 1 min). Figures: claim/release cycles in 3 s on
 * the memory coordinator; claims and etcd revisions in 5 s on a real etcd.
 */
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { MemoryBroker } from "../src/coordinators/memory/broker.ts";
import { Consumer, type ConsumerOptions } from "../src/consumer/consumer.ts";
import { silentLogger } from "../src/log.ts";
import type { Handler } from "../src/types.ts";
import { startEtcd } from "./etcd-support.ts";

const releaseAtOnce = (counter: { runs: number }): Handler => ({
  run: async () => {
    counter.runs++;
    return "release";
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function memory(pacing: ConsumerOptions["releasePacing"]): Promise<number> {
  const broker = new MemoryBroker();
  const counter = { runs: 0 };
  const consumer = new Consumer({
    coordinator: broker.coordinator("n1"),
    node: "n1",
    handler: releaseAtOnce(counter),
    balanceEvery: Infinity,
    log: silentLogger,
    ...(pacing ? { releasePacing: pacing } : {}),
  });
  await consumer.start();
  await broker.client().submitTask("spin");
  await sleep(3000);
  const runs = counter.runs;
  await consumer.shutdown({ timeout: 1000 });
  return runs;
}

async function etcd(
  endpoint: string,
  revision: () => Promise<number>,
  namespace: string,
  pacing: ConsumerOptions["releasePacing"],
): Promise<{ runs: number; revisions: number }> {
  const coordinator = new EtcdCoordinator(
    { endpoints: [endpoint], namespace, node: "n1", leaseTtl: 10 },
    { log: silentLogger },
  );
  const counter = { runs: 0 };
  const consumer = new Consumer({
    coordinator,
    node: "n1",
    handler: releaseAtOnce(counter),
    balanceEvery: Infinity,
    log: silentLogger,
    ...(pacing ? { releasePacing: pacing } : {}),
  });
  await consumer.start();
  await coordinator.client.submitTask("spin");
  const r0 = await revision();
  const runs0 = counter.runs;
  await sleep(5000);
  const revisions = (await revision()) - r0;
  const runs = counter.runs - runs0;
  await consumer.shutdown({ timeout: 2000 });
  return { runs, revisions };
}

const off = { within: 0 };
console.log('release pacing: one task whose handler returns "release" at once');
console.log(
  `memory, 3 s:  pacing off (baseline) ${await memory(off)} cycles; pacing on (defaults) ${await memory(undefined)} cycles`,
);

const server = await startEtcd();
try {
  const kv = server.client();
  const revision = async () => Number((await kv.get("nothing").exec()).header.revision);
  const before = await etcd(server.endpoint, revision, "/bench-off", off);
  const after = await etcd(server.endpoint, revision, "/bench-on", undefined);
  console.log(
    `etcd, 5 s:    pacing off (baseline) ${before.runs} cycles, ${before.revisions} revisions; pacing on (defaults) ${after.runs} cycles, ${after.revisions} revisions`,
  );
} finally {
  await server.stop();
}
process.exit(0);
