/**
 * Wire-format interop with Go Metafora (docs/wire-format.md): keys written exactly the way a Go node
 * and client write them are read, claimed and released correctly, and the keys we write are
 * byte-for-byte what Go writes. Go's prefix-delete bug is not reproduced.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Etcd3 } from "etcd3";
import { balance, stopTask } from "../../src/command.ts";
import type { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { encodeOwner, Keys } from "../../src/coordinators/etcd/keys.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { waitFor } from "../support/wait.ts";
import { Cleanup, makeClient, makeCoordinator, rawClient, RecordingContext, uniqueNamespace } from "./helpers.ts";

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

const GO_META = '{"host":"vm","created":"2026-11-22 14:30:01.81938155 +0000 UTC m=+0.005824162","node":"nodeA"}';

/** The key dump of a live Go node "nodeA", written key by key as Go writes it. */
async function writeGoNode(raw: Etcd3, ns: string): Promise<string> {
  const keys = new Keys(ns);
  const lease = await raw.leaseClient.leaseGrant({ TTL: 60 });
  const onLease = (key: string, value: string) => raw.put(key).value(value).lease(lease.ID).exec();
  await onLease(keys.metadata, GO_META);
  await onLease(keys.node("nodeA"), GO_META);
  await onLease(keys.tasksMetadata, GO_META);
  await onLease(keys.nodeCommandsMetadata("nodeA"), GO_META);
  // Go's SubmitTask: one txn, props then task key.
  for (const id of ["t1", "t2"]) {
    await raw
      .if(keys.props(id), "Version", "==", 0)
      .then(raw.put(keys.props(id)).value("{}"), raw.put(keys.task(id)).value(""))
      .commit();
  }
  // Go's Claim of t1 by nodeA.
  const claim = await raw
    .if(keys.owner("t1"), "Version", "==", 0)
    .and(keys.task("t1"), "Version", ">", 0)
    .then(raw.put(keys.owner("t1")).value('{"node":"nodeA"}').lease(lease.ID))
    .commit();
  expect(claim.succeeded).toBe(true);
  await raw.put(keys.state("t1")).value('{"state":"runnable"}');
  // A task written by hand without props (Go's parseTask reads absent props as "").
  await raw.put(keys.task("t3")).value("");
  return lease.ID;
}

test("a namespace written by a Go node: its claim is respected, its tasks are claimable once released", async () => {
  const ns = uniqueNamespace("go-read");
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(ns);
  const goLease = await writeGoNode(raw, ns);

  const c = makeCoordinator({ etcd, namespace: ns, node: "nodeB", cleanup });
  const ctx = new RecordingContext("nodeB");
  await c.init(ctx);
  expect([...ctx.announcedIds()].sort()).toEqual(["t2", "t3"]);
  expect(ctx.lastAnnounced("t2")?.props).toEqual({});
  expect(ctx.lastAnnounced("t3")?.props).toEqual({});
  expect(Object.fromEntries(c.cluster.nodeTaskCounts())).toEqual({ nodeA: 1, nodeB: 0 });
  expect(c.cluster.unclaimedCount()).toBe(2);
  expect(await c.client.nodes()).toEqual(["nodeA", "nodeB"]);
  const infos = await c.client.tasks();
  expect(infos.map((t) => [t.id, t.owner, t.props])).toEqual([
    ["t1", "nodeA", {}],
    ["t2", undefined, {}],
    ["t3", undefined, {}],
  ]);
  expect(await c.claim({ id: "t1", props: {} })).toBeUndefined();

  // Go's Release: compare the owner value, delete the owner key with prefix.
  const release = await raw
    .if(keys.owner("t1"), "Value", "==", '{"node":"nodeA"}')
    .then(raw.delete().prefix(keys.owner("t1")))
    .commit();
  expect(release.succeeded).toBe(true);
  const t1 = await waitFor("t1 to be announced after Go released it", () => ctx.lastAnnounced("t1"));
  const claim = await c.claim(t1);
  expect(claim).toBeDefined();
  const owner = (await raw.get(keys.owner("t1")).exec()).kvs[0]!;
  expect(owner.value.toString()).toBe('{"node":"nodeB"}'); // byte-identical to Go's encoding
  expect(owner.lease).toBe(c.stats().leaseId!);
  expect(Number(owner.create_revision)).toBe(claim!.token);

  // A Go node's claim txn fails while we hold it and succeeds once we released.
  const goClaim = () =>
    raw
      .if(keys.owner("t1"), "Version", "==", 0)
      .and(keys.task("t1"), "Version", ">", 0)
      .then(raw.put(keys.owner("t1")).value('{"node":"nodeA"}').lease(goLease))
      .commit();
  expect((await goClaim()).succeeded).toBe(false);
  await c.release(t1);
  expect((await goClaim()).succeeded).toBe(true);
  await waitFor("cluster view to count nodeA's claim", () => c.cluster.nodeTaskCounts().get("nodeA") === 1);

  // The Go node dies: its lease goes, its claims and marker with it; we can claim t1 again.
  await raw.leaseClient.leaseRevoke({ ID: goLease });
  await waitFor("nodeA to leave the cluster view", () => !c.cluster.nodeTaskCounts().has("nodeA"));
  const again = await waitFor("a claim of t1 after nodeA's lease ended", () => c.claim({ id: "t1", props: {} }));
  expect(again.token).toBeGreaterThan(claim!.token);
  expect(await c.client.nodes()).toEqual(["nodeB"]);
});

test("a command written by a Go client is delivered and deleted", async () => {
  const ns = uniqueNamespace("go-cmd");
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(ns);
  const c = makeCoordinator({ etcd, namespace: ns, node: "nodeB", cleanup });
  const ctx = new RecordingContext("nodeB");
  await c.init(ctx);
  const key = `${keys.nodeCommandsPrefix("nodeB")}12345678901234567890`;
  await raw.put(key).value('{"command":"stop_task","parameters":{"task":"t1"}}');
  await waitFor("the command", () => ctx.commands.length === 1);
  expect(ctx.commands[0]).toEqual(stopTask("t1"));
  await waitFor("the command key to be deleted", async () => !(await raw.get(key).exists()));
});

test("keys we write are byte-for-byte what Go writes", async () => {
  const ns = uniqueNamespace("go-write");
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(ns);
  const client = makeClient(etcd, ns, cleanup);

  await client.submitTask("plain");
  expect(await raw.get(keys.task("plain")).string()).toBe("");
  expect(await raw.get(keys.props("plain")).string()).toBe("{}");

  await client.submitTask("ex", { _submitted: null, UserID: "test2" });
  expect(await raw.get(keys.props("ex")).string()).toBe('{"_submitted":null,"UserID":"test2"}');
  await client.submitTask("html", { q: "a<b>&c" });
  expect(await raw.get(keys.props("html")).string()).toBe('{"q":"a\\u003cb\\u003e\\u0026c"}');

  await client.submitCommand("nodeA", balance());
  await client.submitCommand("nodeA", stopTask("t1"));
  const commands = await raw.getAll().prefix(keys.nodeCommandsPrefix("nodeA")).strings();
  expect(Object.keys(commands).every((k) => /\/nodes\/nodeA\/commands\/\d{1,20}$/.test(k))).toBe(true);
  expect(Object.values(commands).sort()).toEqual([
    '{"command":"balance"}',
    '{"command":"stop_task","parameters":{"task":"t1"}}',
  ]);

  // Owner of an awkward node name, and the metadata shape.
  const odd = "a<b>&c";
  const c = makeCoordinator({ etcd, namespace: ns, node: odd, cleanup });
  await c.init(new RecordingContext(odd));
  expect(await c.claim({ id: "plain", props: {} })).toBeDefined();
  expect(await raw.get(keys.owner("plain")).string()).toBe('{"node":"a\\u003cb\\u003e\\u0026c"}');
  expect(encodeOwner(odd)).toBe('{"node":"a\\u003cb\\u003e\\u0026c"}');
  const meta = await raw.get(keys.node(odd)).string();
  expect(meta).toMatch(
    /^\{"host":"[^"]*","created":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC","node":"a\\u003cb\\u003e\\u0026c"\}$/,
  );
});

test("done and deleteTask remove exactly tasks/T and tasks/T/..., never siblings sharing the prefix (Go's bug)", async () => {
  const ns = uniqueNamespace("prefix");
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(ns);
  const client = makeClient(etcd, ns, cleanup);
  for (const id of ["t1", "t10", "t1x", "u1", "u10"]) await client.submitTask(id);
  await raw.put(keys.taskCommands("t1")).value('{"message":"run"}');
  await raw.put(keys.state("t1")).value('{"state":"runnable"}');
  const c: EtcdCoordinator = makeCoordinator({ etcd, namespace: ns, node: "n", cleanup });
  await c.init(new RecordingContext("n"));
  expect(await c.claim({ id: "t1", props: {} })).toBeDefined();
  await c.done({ id: "t1", props: {} });
  expect((await client.tasks()).map((t) => t.id)).toEqual(["t10", "t1x", "u1", "u10"]);
  expect(await raw.getAll().prefix(keys.taskChildren("t1")).keys()).toEqual([]);
  expect(await raw.get(keys.state("t1")).string()).toBe('{"state":"runnable"}'); // state is permanent (docs/wire-format.md)
  expect(await client.deleteTask("u1")).toBe(true);
  expect((await client.tasks()).map((t) => t.id)).toEqual(["t10", "t1x", "u10"]);
});
