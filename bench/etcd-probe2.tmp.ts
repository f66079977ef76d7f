import { ChildNode, client, ownerCounts, startEtcd, submitAll, taskIds, until } from "./etcd-support.ts";
const CONC = Number(process.argv[2] ?? 1);
const etcd = await startEtcd();
try {
  const ns = "/p2";
  const c = client(etcd, ns);
  const leaver = new ChildNode(etcd, ns, "leaver", 10, CONC);
  await leaver.ready();
  await submitAll(c, taskIds(1000));
  await until("leaver holds all", async () => (await ownerCounts(c)).get("leaver") === 1000, 120_000, 200);
  const st = [new ChildNode(etcd, ns, "s1", 10, CONC), new ChildNode(etcd, ns, "s2", 10, CONC)];
  await Promise.all(st.map((s) => s.ready()));
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = performance.now();
  const marks: string[] = [];
  void leaver.signal("SIGTERM").then(() => marks.push(`exit@${Math.round(performance.now() - t0)}`));
  let next = 100;
  await until("all", () => { const t = st[0]!.claimed + st[1]!.claimed; while (t >= next) { marks.push(`${next}@${Math.round(performance.now() - t0)}`); next += 100; } return t >= 1000; }, 60000, 2);
  console.log(CONC, marks.join(" "));
  await Promise.all(st.map((s) => s.signal("SIGTERM")));
  c.close();
} finally { await etcd.stop(); }
