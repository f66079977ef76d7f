import { afterAll, beforeAll, expect, test } from "bun:test";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

test("the harness runs a real etcd on loopback that survives kill and restart on its data dir", async () => {
  expect(etcd.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
  const c = etcd.client();
  await c.put("/harness/k").value("v");
  await etcd.restart();
  const c2 = etcd.client();
  expect(await c2.get("/harness/k").string()).toBe("v");
});
