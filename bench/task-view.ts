/**
 * What one node spends per watch event in its task view, the work every node does for every
 * task of the namespace (no etcd: the view is fed events directly, as the watch would):
 *  - a bulk submit: props and task key of each new task, ranked announcements to a consumer
 *    queue (10 live nodes);
 *  - the claims that follow: an owner put per task by some other node (withdrawals).
 * Baseline from the same run: one Map lookup per event with a freshly sliced id, the least a
 * table keyed by task id can cost.
 *
 *   bun bench/task-view.ts [tasks=100000]
 */
import { PendingQueue } from "../src/consumer/pending-queue.ts";
import { encodeOwner, Keys } from "../src/coordinators/etcd/keys.ts";
import { TaskView } from "../src/coordinators/etcd/task-view.ts";
import type { MirrorEvent } from "../src/coordinators/etcd/watch.ts";
import { silentLogger } from "../src/log.ts";
import type { CoordinatorContext } from "../src/types.ts";

const TASKS = Number(process.argv[2] ?? 100_000);
const keys = new Keys("/bench");
const nodes = Array.from({ length: 10 }, (_, i) => `node-${String(i + 1).padStart(2, "0")}`);
const ids = Array.from({ length: TASKS }, (_, i) => `t-${String(i).padStart(6, "0")}`);
const us = (ms: number, n: number): string => `${((ms * 1000) / n).toFixed(2)} µs`;

function baseline(): number {
  const table = new Map<string, number>();
  for (const id of ids) table.set(id, 1);
  const ownerKeys = ids.map((id) => keys.owner(id));
  const start = keys.tasksPrefix.length;
  let found = 0;
  const t0 = performance.now();
  for (const key of ownerKeys) if (table.get(key.slice(start, key.indexOf("/", start)))) found++;
  const ms = performance.now() - t0;
  if (found !== TASKS) throw new Error("baseline lookup failed");
  return ms;
}

async function view(): Promise<{ submitMs: number; ownerMs: number; announced: number }> {
  const queue = new PendingQueue();
  const context: CoordinatorContext = {
    node: nodes[0]!,
    log: silentLogger,
    announce: (task, rank) => queue.put(task, rank),
    withdraw: (id) => void queue.delete(id),
    pendingClaims: () => queue.size,
    command: () => {},
    lost: () => {},
    suspend: async () => {},
    resume: () => {},
  };
  const v = new TaskView({
    keys,
    node: nodes[0]!,
    log: silentLogger,
    context: () => context,
    orphan: () => {},
    lost: () => {},
    liveNodes: () => nodes,
  });
  v.snapshot([], 1);
  let revision = 1;
  const submit: MirrorEvent[][] = [];
  for (let i = 0; i < TASKS; i += 100) {
    const batch: MirrorEvent[] = [];
    for (const id of ids.slice(i, i + 100)) {
      revision++;
      const kv = { createRevision: revision, modRevision: revision, lease: "0" };
      batch.push({ type: "put", kv: { ...kv, key: keys.props(id), value: "{}" } });
      batch.push({ type: "put", kv: { ...kv, key: keys.task(id), value: "" } });
    }
    submit.push(batch);
  }
  const owners = nodes.map(encodeOwner);
  const claims: MirrorEvent[][] = [];
  for (let i = 0; i < TASKS; i += 64) {
    revision++;
    claims.push(
      ids.slice(i, i + 64).map((id) => ({
        type: "put" as const,
        kv: {
          key: keys.owner(id),
          value: owners[1 + (i % 9)]!,
          createRevision: revision,
          modRevision: revision,
          lease: "7587862371024181250",
        },
      })),
    );
  }
  let t0 = performance.now();
  for (const batch of submit) v.events(batch);
  const submitMs = performance.now() - t0;
  const announced = queue.size;
  t0 = performance.now();
  for (const batch of claims) v.events(batch);
  const ownerMs = performance.now() - t0;
  v.close();
  return { submitMs, ownerMs, announced };
}

// Three rounds each (the first also warms the JIT); the median is printed.
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
const bases: number[] = [];
const runs: Awaited<ReturnType<typeof view>>[] = [];
for (let round = 0; round < 3; round++) {
  bases.push(baseline());
  runs.push(await view());
}
const base = median(bases);
const submitMs = median(runs.map((r) => r.submitMs));
const ownerMs = median(runs.map((r) => r.ownerMs));
console.log(`task view, ${TASKS} tasks, 10 live nodes (one node's work for every task of the namespace; median of 3)`);
console.log(`  baseline:  ${us(base, TASKS)} per event (one Map lookup by a freshly sliced id)`);
console.log(
  `  submit:    ${us(submitMs, TASKS)} per task (props + task key, ranked announcements; ${runs[0]!.announced} announced at once, the rest held back)`,
);
console.log(`  claims:    ${us(ownerMs, TASKS)} per owner event by another node (withdrawals)`);
