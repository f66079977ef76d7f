import { test, expect, beforeAll, afterAll } from "bun:test";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { EtcdStateStore } from "../../src/coordinators/etcd/state-store.ts";
let etcd: EtcdServer;
beforeAll(async () => { etcd = await startEtcd(); });
afterAll(async () => { await etcd.stop(); });
test("probe", async () => {
  const c = etcd.client();
  const store = new EtcdStateStore(c, "/ns");
  const t0 = Date.now();
  const log = (m: string) => console.log(Date.now() - t0, m);
  log(JSON.stringify(await store.load("a")));
  await c.put("/ns/state/a").value("{broken").exec();
  log("put done");
  const p = store.load("a");
  p.then((v) => log("resolved " + JSON.stringify(v)), (e) => log("rejected " + String(e)));
  await new Promise((res) => setTimeout(res, 3000));
  log("waited");
}, 20000);
