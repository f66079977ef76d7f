/**
 * Client.submitTasks on etcd: batched transactions with a per-task result, the same keys as
 * submitTask writes, ids taken by Go-style clients (props key present) reported "exists", and a
 * bad list refused before anything is written.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { EtcdClient } from "../../src/coordinators/etcd/client.ts";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import { silentLogger } from "../../src/log.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

test("submitTasks creates hundreds of tasks in batches and reports ids already taken", async () => {
  const ns = "/bulk-1";
  const keys = new Keys(ns);
  const client = EtcdClient.connect({ endpoints: [etcd.endpoint], namespace: ns }, { log: silentLogger });
  try {
    await client.submitTask("t-0007", { pre: true });
    // A props key with no task key (a half-written Go submit) also makes the id taken.
    await etcd.client().put(keys.props("t-0300")).value("{}");
    const list = Array.from({ length: 400 }, (_, i) => ({ id: `t-${String(i).padStart(4, "0")}`, props: { n: i } }));
    const results = await client.submitTasks(list);
    expect(results.map((r) => r.id)).toEqual(list.map((t) => t.id));
    const exists = results.filter((r) => r.result === "exists").map((r) => r.id);
    expect(exists).toEqual(["t-0007", "t-0300"]);
    const tasks = await client.tasks();
    expect(tasks.length).toBe(399); // t-0300 has no task key
    expect(tasks.find((t) => t.id === "t-0007")?.props).toEqual({ pre: true });
    expect(tasks.find((t) => t.id === "t-0123")?.props).toEqual({ n: 123 });
    // Same bytes as submitTask: task key "" and props in Go's JSON encoding.
    const raw = await etcd.client().get(keys.task("t-0123")).buffer();
    expect(raw).toEqual(Buffer.alloc(0));
    // A second bulk submit of the same list creates nothing.
    const again = await client.submitTasks(list.slice(0, 100));
    expect(again.every((r) => r.result === "exists")).toBe(true);
  } finally {
    client.close();
  }
});

test("submitTasks refuses a malformed list before writing anything", async () => {
  const ns = "/bulk-2";
  const client = EtcdClient.connect({ endpoints: [etcd.endpoint], namespace: ns }, { log: silentLogger });
  try {
    await expect(client.submitTasks([{ id: "a" }, { id: "b/c" }])).rejects.toThrow(
      /task 2 of the bulk submit.*must not contain '\/'/,
    );
    await expect(client.submitTasks([{ id: "a" }, { id: "a" }])).rejects.toThrow(/appears twice.*tasks 1 and 2/);
    await expect(client.submitTasks([{ id: "a", props: [] as never }])).rejects.toThrow(
      /props of task "a".*plain object/,
    );
    await expect(client.submitTasks("a" as never)).rejects.toThrow(/expects an array/);
    expect(await client.tasks()).toEqual([]);
    expect(await client.submitTasks([])).toEqual([]);
  } finally {
    client.close();
  }
});

test("the memory client's submitTasks gives the same results", async () => {
  const broker = new MemoryBroker();
  const client = broker.client();
  await client.submitTask("b");
  expect(await client.submitTasks([{ id: "a", props: { x: 1 } }, { id: "b" }])).toEqual([
    { id: "a", result: "created" },
    { id: "b", result: "exists" },
  ]);
  expect((await client.tasks()).map((t) => [t.id, t.props])).toEqual([
    ["a", { x: 1 }],
    ["b", {}],
  ]);
});
