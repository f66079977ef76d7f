/**
 * EtcdCoordinator and EtcdClient against a real etcd: behavioural equivalents of Go Metafora's
 * metcdv3 tests (Go Metafora's tests T29–T35, T39–T41, T45, T46), the wire format, fencing and claims.
 * The consumer is replaced by a RecordingContext; etcd and the coordinator are real.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { encodeOwner, Keys } from "../../src/coordinators/etcd/keys.ts";
import { balance, freeze, stopTask } from "../../src/command.ts";
import { NodeNameTakenError, TaskExistsError } from "../../src/errors.ts";
import { useEtcd } from "../support/use-etcd.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import {
  CapturingLogger,
  Cleanup,
  makeClient,
  makeCoordinator,
  rawClient,
  RecordingContext,
  uniqueNamespace,
} from "./helpers.ts";

const etcd = useEtcd();
const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function started(
  namespace: string,
  node: string,
  config = {},
): Promise<{ c: EtcdCoordinator; ctx: RecordingContext }> {
  const c = makeCoordinator({ etcd, namespace, node, cleanup, config });
  const ctx = new RecordingContext(node);
  await c.init(ctx);
  return { c, ctx };
}

describe("registration (T29, T34, names)", () => {
  test("T29: init writes the four metadata keys on one lease, as Go does", async () => {
    const ns = uniqueNamespace("t29");
    const { c } = await started(ns, "node1");
    const raw = rawClient(etcd, cleanup);
    const keys = new Keys(ns);
    const leaseId = c.stats().leaseId;
    expect(leaseId).toBeDefined();
    for (const key of [keys.metadata, keys.node("node1"), keys.tasksMetadata, keys.nodeCommandsMetadata("node1")]) {
      const res = await raw.get(key).exec();
      const kv = res.kvs[0];
      expect(kv, key).toBeDefined();
      expect(kv!.lease).toBe(leaseId!);
      const meta = JSON.parse(kv!.value.toString()) as Record<string, unknown>;
      expect(Object.keys(meta)).toEqual(["host", "created", "node"]);
      expect(meta.node).toBe("node1");
      expect(String(meta.created)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC$/);
    }
    // A listing of tasks/ works on a fresh namespace (T29's GET).
    expect(await c.client.tasks()).toEqual([]);
  });

  test("T34: a closed node's marker disappears, the other node's stays", async () => {
    const ns = uniqueNamespace("t34");
    const { c: c1 } = await started(ns, "node1");
    await started(ns, "node2");
    const raw = rawClient(etcd, cleanup);
    const keys = new Keys(ns);
    expect(await raw.get(keys.node("node1")).exists()).toBe(true);
    expect(await raw.get(keys.node("node2")).exists()).toBe(true);
    await c1.close();
    expect(await raw.get(keys.node("node1")).exists()).toBe(false);
    expect(await raw.get(keys.node("node2")).exists()).toBe(true);
  });

  test("a second node with a live name refuses to start, naming the name; the first is untouched", async () => {
    const ns = uniqueNamespace("names");
    const { c: first } = await started(ns, "dup");
    const second = makeCoordinator({ etcd, namespace: ns, node: "dup", cleanup });
    const err = await second.init(new RecordingContext("dup")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeNameTakenError);
    expect((err as Error).message).toContain('"dup"');
    expect(first.stats().state).toBe("active");
    expect(await first.client.nodes()).toEqual(["dup"]);
    // Once the first node is gone the name is free again.
    await first.close();
    const third = makeCoordinator({ etcd, namespace: ns, node: "dup", cleanup });
    await third.init(new RecordingContext("dup"));
    expect(third.stats().state).toBe("active");
  });

  test("T39: nodes() lists live nodes (Go's always returned nil)", async () => {
    const ns = uniqueNamespace("t39");
    const { c } = await started(ns, "b-node");
    await started(ns, "a-node");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitCommand("ghost", freeze()); // a command for an unknown node registers nothing
    expect(await client.nodes()).toEqual(["a-node", "b-node"]);
    await waitFor(
      "cluster view to list both nodes",
      () => [...c.cluster.nodeTaskCounts().keys()].join() === "a-node,b-node",
    );
  });

  test("the granted TTL is used and the claim deadline follows renewals", async () => {
    const ns = uniqueNamespace("ttl");
    const { c } = await started(ns, "n", { leaseTtl: 1 });
    const stats = c.stats();
    expect(stats.leaseTtlSeconds).toBeGreaterThanOrEqual(1); // etcd 3.4 grants its minimum (2 s) for 1
    const first = c.claimDeadline();
    expect(first).toBeGreaterThan(Date.now() - 1000);
    expect(first).toBeLessThanOrEqual(Date.now() + stats.leaseTtlSeconds! * 1000);
    await waitFor("the deadline to move forward with a keepalive", () => c.claimDeadline() > first);
  });
});

describe("discovery and claims (T30–T33, T35, T45, T46)", () => {
  test("T30: a task key written by hand while watching is announced (props {})", async () => {
    const ns = uniqueNamespace("t30");
    const { c, ctx } = await started(ns, "node1");
    const raw = rawClient(etcd, cleanup);
    await raw.put(new Keys(ns).task("test-task")).value("5");
    const task = await waitFor("announcement of test-task", () => ctx.lastAnnounced("test-task"), { timeout: 5000 });
    expect(task.props).toEqual({});
    await c.close();
    expect(c.stats().state).toBe("closed");
  });

  test("T31: tasks submitted one by one are each announced and claimed", async () => {
    const ns = uniqueNamespace("t31");
    const { c, ctx } = await started(ns, "node1");
    const client = makeClient(etcd, ns, cleanup);
    const tokens: number[] = [];
    for (const id of ["t1", "t2", "t3"]) {
      await client.submitTask(id);
      const task = await waitFor(`announcement of ${id}`, () => ctx.lastAnnounced(id));
      expect(task.id).toBe(id);
      const claim = await c.claim(task);
      expect(claim).toBeDefined();
      tokens.push(claim!.token);
    }
    expect([...tokens].sort((a, b) => a - b)).toEqual(tokens); // tokens are etcd revisions: increasing
    const infos = await client.tasks();
    expect(infos.map((t) => [t.id, t.owner, t.token])).toEqual([
      ["t1", "node1", tokens[0]],
      ["t2", "node1", tokens[1]],
      ["t3", "node1", tokens[2]],
    ]);
  });

  test("T32: two nodes see a task, exactly one claim wins", async () => {
    const ns = uniqueNamespace("t32");
    const a = await started(ns, "node1");
    const b = await started(ns, "node2");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("shared");
    await waitFor(
      "both nodes announce",
      () => a.ctx.announcedIds().has("shared") && b.ctx.announcedIds().has("shared"),
    );
    const task = a.ctx.lastAnnounced("shared")!;
    const [ra, rb] = await Promise.all([a.c.claim(task), b.c.claim(task)]);
    expect([ra, rb].filter(Boolean).length).toBe(1);
    // The loser's view shows the winner as owner.
    const winner = ra ? "node1" : "node2";
    const loser = ra ? b : a;
    await waitFor(
      "loser's cluster view to count the winner's claim",
      () => loser.c.cluster.nodeTaskCounts().get(winner) === 1,
    );
    expect(loser.c.cluster.unclaimedCount()).toBe(0);
  });

  test("T33: a task submitted before init is found by the initial listing; release hands it to the other node", async () => {
    const ns = uniqueNamespace("t33");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("early");
    const a = await started(ns, "node1");
    const task = a.ctx.lastAnnounced("early"); // announced during init, before it resolved
    expect(task?.id).toBe("early");
    const claim = await a.c.claim(task!);
    expect(claim).toBeDefined();
    const b = await started(ns, "node2");
    await staysFalse("node2 being told about a claimed task", () => b.ctx.announcedIds().has("early"), 300);
    await a.c.release(task!);
    const again = await waitFor("node2 to see the released task", () => b.ctx.lastAnnounced("early"));
    const claim2 = await b.c.claim(again);
    expect(claim2).toBeDefined();
    expect(claim2!.token).toBeGreaterThan(claim!.token); // fencing token increases per claim
    expect((await client.tasks())[0]?.owner).toBe("node2");
  });

  test("T35: a task whose stale owner key is deleted becomes claimable for a node that starts later", async () => {
    const ns = uniqueNamespace("t35");
    const raw = rawClient(etcd, cleanup);
    const keys = new Keys(ns);
    await raw.put(keys.owner("expiring")).value(encodeOwner("gone-node"));
    await raw.put(keys.task("expiring")).value("");
    const a = await started(ns, "node1");
    expect(a.ctx.announcedIds().has("expiring")).toBe(false);
    expect(a.c.cluster.unclaimedCount()).toBe(0);
    await raw.delete().key(keys.owner("expiring")).exec();
    const task = await waitFor("announcement after the owner key went", () => a.ctx.lastAnnounced("expiring"), {
      timeout: 5000,
    });
    expect(await a.c.claim(task)).toBeDefined();
  });

  test("T45: no claim resurrects a deleted or finished task", async () => {
    const ns = uniqueNamespace("t45");
    const { c } = await started(ns, "node1");
    const client = makeClient(etcd, ns, cleanup);
    expect(await c.claim({ id: "ghost", props: {} })).toBeUndefined();
    await client.submitTask("ghost");
    const claim = await c.claim({ id: "ghost", props: {} });
    expect(claim).toBeDefined();
    await c.done({ id: "ghost", props: {} });
    expect(await client.tasks()).toEqual([]);
    expect(await c.claim({ id: "ghost", props: {} })).toBeUndefined();
    expect(await rawClient(etcd, cleanup).getAll().prefix(new Keys(ns).taskChildren("ghost")).keys()).toEqual([]);
  });

  test("T46: props reach the announcement decoded (custom task data)", async () => {
    const ns = uniqueNamespace("t46");
    const { ctx } = await started(ns, "node1");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("alt", { _submitted: null, UserID: "test2" });
    const task = await waitFor("announcement of alt", () => ctx.lastAnnounced("alt"));
    expect(task.props).toEqual({ _submitted: null, UserID: "test2" });
  });

  test("claims are refused while the claim is held elsewhere, and release is fenced by the token", async () => {
    const ns = uniqueNamespace("fence");
    const a = await started(ns, "node1");
    const b = await started(ns, "node2");
    const client = makeClient(etcd, ns, cleanup);
    const raw = rawClient(etcd, cleanup);
    const keys = new Keys(ns);
    await client.submitTask("f");
    const task = { id: "f", props: {} };
    const first = await a.c.claim(task);
    expect(first).toBeDefined();
    expect(await b.c.claim(task)).toBeUndefined();
    // Someone deletes node1's owner key; node1 is told, node2 claims.
    await raw.delete().key(keys.owner("f")).exec();
    await waitFor("node1 to learn it lost f", () => a.ctx.lostCalls.some((l) => l.id === "f" && l.reason === "lost"));
    const second = await waitFor("node2 to claim f", () => b.c.claim(task));
    expect(second.token).toBeGreaterThan(first!.token);
    // node1's late release must not delete node2's claim.
    await a.c.release(task);
    const owner = await raw.get(keys.owner("f")).exec();
    expect(owner.kvs[0]?.value.toString()).toBe(encodeOwner("node2"));
    expect(Number(owner.kvs[0]?.create_revision)).toBe(second.token);
  });

  test("a stale done (claim lost meanwhile) does not delete the new owner's task", async () => {
    const ns = uniqueNamespace("stale-done");
    const a = await started(ns, "node1");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("d");
    const task = { id: "d", props: {} };
    expect(await a.c.claim(task)).toBeDefined();
    // Overwrite the owner value (same key, same create revision) as if another node held it.
    await rawClient(etcd, cleanup).put(new Keys(ns).owner("d")).value(encodeOwner("node3"));
    await waitFor("node1 to learn it lost d", () => a.ctx.lostCalls.some((l) => l.id === "d"));
    await a.c.done(task);
    expect((await client.tasks()).map((t) => [t.id, t.owner])).toEqual([["d", "node3"]]);
  });
});

describe("client (T40, T41)", () => {
  test("T40: submitTask succeeds once, a duplicate fails cleanly, bad ids are refused", async () => {
    const ns = uniqueNamespace("t40");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("once", { a: 1 });
    const err = await client.submitTask("once").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskExistsError);
    expect((err as Error).message).toContain('"once"');
    for (const bad of ["", "a/b", "_metafora"]) {
      await expect(client.submitTask(bad)).rejects.toThrow(/task id/);
    }
    await expect(client.submitTask("arr", [] as unknown as Record<string, unknown>)).rejects.toThrow(/plain object/);
    expect(await client.deleteTask("once")).toBe(true);
    expect(await client.deleteTask("once")).toBe(false);
    await client.submitTask("once"); // deleted ids can be submitted again
  });

  test("T41: commands reach their node in submission order and are deleted as consumed", async () => {
    const ns = uniqueNamespace("t41");
    const client = makeClient(etcd, ns, cleanup);
    // Commands sent before the node starts wait for it (Go behaviour) and keep their order.
    await client.submitCommand("node1", freeze());
    await client.submitCommand("node1", stopTask("t9"));
    const { ctx } = await started(ns, "node1");
    expect(ctx.commands).toEqual([freeze(), stopTask("t9")]);
    for (let i = 0; i < 10; i++) await client.submitCommand("node1", { command: "custom", parameters: { n: i } });
    await client.submitCommand("node1", balance());
    await waitFor("13 commands", () => ctx.commands.length === 13);
    expect(ctx.commands.slice(2, 12).map((c) => c.parameters?.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(ctx.commands[12]).toEqual(balance());
    await staysFalse("a command delivered twice", () => ctx.commands.length > 13, 200);
    const raw = rawClient(etcd, cleanup);
    await waitFor("consumed command keys to be deleted", async () => {
      const keys = await raw.getAll().prefix(new Keys(ns).nodeCommandsPrefix("node1")).keys();
      return keys.length === 1 && keys[0]!.endsWith("/_metafora");
    });
  });

  test("deleteTask stops the running instance: the owner is told 'deleted'", async () => {
    const ns = uniqueNamespace("delete");
    const { c, ctx } = await started(ns, "node1");
    const client = makeClient(etcd, ns, cleanup);
    await client.submitTask("doomed");
    expect(await c.claim({ id: "doomed", props: {} })).toBeDefined();
    expect(await client.deleteTask("doomed")).toBe(true);
    await waitFor("lost(deleted)", () => ctx.lostCalls.find((l) => l.id === "doomed")?.reason === "deleted");
    expect(c.stats().claims).toBe(0);
  });

  test("bad config is refused with the field named", () => {
    expect(() => new EtcdCoordinator({ endpoints: [etcd.endpoint], namespace: "/x" })).toThrow(/node/);
    expect(() => new EtcdCoordinator({ endpoints: [], namespace: "/x", node: "n" })).toThrow(/endpoints/);
    expect(() => new EtcdCoordinator({ endpoints: [etcd.endpoint], namespace: "/", node: "n" })).toThrow(/namespace/);
    expect(() => new EtcdCoordinator({ endpoints: [etcd.endpoint], namespace: "/x", node: "a/b" })).toThrow(/node/);
  });

  test("init fails cleanly within the dial timeout when etcd is unreachable", async () => {
    const log = new CapturingLogger();
    const c = new EtcdCoordinator(
      { endpoints: ["127.0.0.1:1"], namespace: "/x", node: "n", dialTimeout: 500 },
      { log },
    );
    cleanup.add(c, (x) => x.close());
    const startedAt = Date.now();
    await expect(c.init(new RecordingContext("n"))).rejects.toThrow();
    expect(Date.now() - startedAt).toBeLessThan(5000);
    expect(c.stats().state).toBe("closed");
  });
});

describe("batched claims and releases", () => {
  test("concurrent claims share transactions; ones that cannot win are dropped, the rest still win", async () => {
    const ns = uniqueNamespace("batch-claim");
    const a = await started(ns, "node1");
    const b = await started(ns, "node2");
    const client = makeClient(etcd, ns, cleanup);
    const ids = ["b0", "b1", "b2", "b3", "b4", "b5", "b6"];
    for (const id of ids) await client.submitTask(id);
    expect(await b.c.claim({ id: "b3", props: {} })).toBeDefined(); // owned elsewhere
    await client.deleteTask("b5"); // gone
    // Claims asked for in one turn share a txn, whose conditions fail (b3 owned, b5 gone);
    // the remaining five are retried in two smaller transactions (3 + 2) and all win.
    const results = await Promise.all(ids.map((id) => a.c.claim({ id, props: {} })));
    const won = ids.filter((_, i) => results[i]);
    expect(won).toEqual(["b0", "b1", "b2", "b4", "b6"]);
    expect(new Set(won.map((id) => results[ids.indexOf(id)]!.token)).size).toBe(2);
    const infos = await client.tasks();
    expect(infos.filter((t) => t.owner === "node1").map((t) => [t.id, t.token])).toEqual(
      won.map((id) => [id, results[ids.indexOf(id)]!.token]),
    );
    expect(infos.find((t) => t.id === "b3")?.owner).toBe("node2");
  });

  test("a batch that keeps losing races shrinks (halves sent at once), not claim by claim", async () => {
    const ns = uniqueNamespace("batch-race");
    const b = await started(ns, "node2");
    const client = makeClient(etcd, ns, cleanup);
    const ids = Array.from({ length: 10 }, (_, i) => `race${i}`);
    for (const id of ids) await client.submitTask(id);
    // Before each of node1's batched transactions, node2 wins one more of its tasks, up to
    // five times: the first rounds fail on a new lost race each.
    const stolen: string[] = [];
    let singles = 0;
    // Counted before the await: several batched transactions are in flight at once, and each
    // must see the steals the earlier ones already started (at most five in all).
    let steals = 0;
    const beforeClaimTxn = async (inTxn: readonly string[]): Promise<void> => {
      if (inTxn.length === 1) singles++;
      if (inTxn.length > 1 && steals < 5) {
        steals++;
        // The last task of this very transaction (never race0): its compare fails.
        const victim = inTxn.filter((id) => id !== "race0").at(-1);
        if (victim && (await b.c.claim({ id: victim, props: {} }))) stolen.push(victim);
      }
    };
    const a = makeCoordinator({
      etcd,
      namespace: ns,
      node: "node1",
      cleanup,
      options: { testHooks: { beforeClaimTxn } },
    });
    await a.init(new RecordingContext("node1"));
    // race0 goes alone; the nine asked for while it is in flight share the next transactions.
    const results = await Promise.all(ids.map((id) => a.claim({ id, props: {} })));
    expect(stolen.length).toBeGreaterThanOrEqual(2);
    const survivors = ids.filter((id) => !stolen.includes(id));
    expect(ids.filter((_, i) => results[i])).toEqual(survivors);
    // The survivors won in shrinking batches, not one transaction per claim.
    expect(singles).toBeLessThan(survivors.length);
    expect(new Set(survivors.map((id) => results[ids.indexOf(id)]!.token)).size).toBeLessThan(survivors.length);
    const infos = await client.tasks();
    expect(infos.filter((t) => t.owner === "node2").map((t) => t.id)).toEqual([...stolen].sort());
    expect(infos.filter((t) => t.owner === "node1").map((t) => t.id)).toEqual(survivors);
  });

  test("releases sent together go as one fenced transaction; a claim lost meanwhile is left to its new owner", async () => {
    const ns = uniqueNamespace("batch-release");
    const a = await started(ns, "node1");
    const b = await started(ns, "node2");
    const client = makeClient(etcd, ns, cleanup);
    const raw = rawClient(etcd, cleanup);
    const keys = new Keys(ns);
    const ids = Array.from({ length: 10 }, (_, i) => `r${i}`);
    for (const id of ids) await client.submitTask(id);
    for (const id of ids) expect(await a.c.claim({ id, props: {} })).toBeDefined();
    // r7's claim is taken over (owner deleted, node2 claims) before node1 learns of it.
    await raw.delete().key(keys.owner("r7")).exec();
    const stolen = await waitFor("node2 to claim r7", () => b.c.claim({ id: "r7", props: {} }));
    await Promise.all(ids.map((id) => a.c.release({ id, props: {} })));
    const infos = await client.tasks();
    expect(infos.filter((t) => t.owner).map((t) => [t.id, t.owner, t.token])).toEqual([["r7", "node2", stolen.token]]);
    expect(a.c.stats().claims).toBe(0);
  });
});
