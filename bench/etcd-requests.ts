/**
 * etcd requests per running task per minute in steady state, counted by etcd itself (its
 * /metrics gRPC counters: unary calls handled plus stream messages received). Goal: nothing
 * beyond each node's lease keepalives, which do not grow with the number of tasks.
 *
 *   bun bench/etcd-requests.ts [tasks=1000] [nodes=3] [windowSeconds=30] [leaseTtl=10]
 */
import {
  client,
  diffCounts,
  etcdRequestCounts,
  RunningCounts,
  startEtcd,
  startNode,
  submitAll,
  taskIds,
  until,
} from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 1000);
const NODES = Number(process.argv[3] ?? 3);
const WINDOW_S = Number(process.argv[4] ?? 30);
const TTL = Number(process.argv[5] ?? 10);

const etcd = await startEtcd();
try {
  const ns = "/bench-requests";
  const counts = new RunningCounts();
  const nodes = [];
  for (let i = 1; i <= NODES; i++) nodes.push(await startNode(etcd, ns, `node-${i}`, counts, TTL));
  const c = client(etcd, ns);
  await submitAll(c, taskIds(TASKS));
  await until("every task running", () => counts.total() === TASKS, 120_000, 20);
  await new Promise((r) => setTimeout(r, 2000)); // let releases, command deletes etc. settle
  const before = await etcdRequestCounts(etcd);
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const after = await etcdRequestCounts(etcd);
  const delta = diffCounts(after, before);
  const perMinute = 60 / WINDOW_S;
  let total = 0;
  let keepalive = 0;
  console.log(
    `etcd requests in steady state: ${TASKS} tasks running on ${NODES} nodes, lease TTL ${TTL} s, ${WINDOW_S} s window`,
  );
  for (const [method, n] of [...delta].sort()) {
    total += n;
    if (method === "Lease.LeaseKeepAlive") keepalive += n;
    console.log(`  ${method.padEnd(24)} ${String(n).padStart(6)} in window = ${(n * perMinute).toFixed(1)}/min`);
  }
  console.log(
    `  total: ${(total * perMinute).toFixed(1)}/min = ${((total * perMinute) / TASKS).toFixed(4)} per running task per minute`,
  );
  console.log(
    `  beyond keepalives: ${((total - keepalive) * perMinute).toFixed(1)}/min = ${(((total - keepalive) * perMinute) / TASKS).toFixed(4)} per running task per minute (goal 0)`,
  );
  console.log(`  keepalives: ${((keepalive * perMinute) / NODES).toFixed(1)}/min per node (independent of task count)`);
  await Promise.all(nodes.map((n) => n.consumer.shutdown({ timeout: 30_000 })));
  c.close();
} finally {
  await etcd.stop();
}
