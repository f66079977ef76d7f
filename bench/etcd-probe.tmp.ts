import { ChildNode, client, ownerCounts, RunningCounts, startEtcd, startNode, submitAll, taskIds, until } from "./etcd-support.ts";
import { DumbBalancer } from "../src/balancers/dumb.ts";
const BAL = process.argv[2] ?? "fair";
const CONC = Number(process.argv[3] ?? 1);
const etcd = await startEtcd();
try {
  const ns = "/probe";
  const c = client(etcd, ns);
  const leaver = new ChildNode(etcd, ns, "leaver", 10);
  await leaver.ready();
  await submitAll(c, taskIds(1000));
  await until("leaver holds all", async () => (await ownerCounts(c)).get("leaver") === 1000, 120_000, 200);
  const counts = new RunningCounts();
  const opts = { claimConcurrency: CONC, ...(BAL === "dumb" ? { balancer: new DumbBalancer() } : {}) };
  const stayers = [await startNode(etcd, ns, "s1", counts, 10, opts), await startNode(etcd, ns, "s2", counts, 10, opts)];
  let t0 = 0;
  let missed = 0;
  const firsts: Record<string, number> = {};
  for (const s of stayers) {
    const orig = s.coordinator.claim.bind(s.coordinator);
    s.coordinator.claim = async (t) => { firsts[s.name + "-claimcall"] ??= Math.round(performance.now() - t0); const r = await orig(t); firsts[s.name + "-claimret"] ??= Math.round(performance.now() - t0); return r; };
  }
  for (const s of stayers) s.consumer.on("claimMissed", () => missed++);
  t0 = performance.now();
  const marks: string[] = [];
  const exited = leaver.signal("SIGTERM").then(() => marks.push(`exit@${Math.round(performance.now() - t0)}`));
  let next = 100;
  await until("all", () => { const t = counts.total(); while (t >= next) { marks.push(`${next}@${Math.round(performance.now() - t0)}`); next += 100; } return t === 1000; }, 60000, 2);
  await exited;
  console.log(BAL, CONC, marks.join(" "), "missed", missed, JSON.stringify(firsts));
  await Promise.all(stayers.map((s) => s.consumer.shutdown({ timeout: 30_000 })));
  c.close();
} finally { await etcd.stop(); }
