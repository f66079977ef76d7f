import { expect, test } from "bun:test";
import { useEtcd } from "../support/use-etcd.ts";

const etcd = useEtcd();

test("the harness runs a real etcd on loopback that survives kill and restart on its data dir", async () => {
  expect(etcd.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
  const c = etcd.client();
  await c.put("/harness/k").value("v");
  await etcd.restart();
  const c2 = etcd.client();
  expect(await c2.get("/harness/k").string()).toBe("v");
});
