/**
 * Fencing on a real etcd, in process: checkpoints fenced by the claim and handed to the next
 * owner, fenced state writes and task-command takes, and claim deadlines that a wall-clock
 * jump cannot move.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { Consumer } from "../../src/consumer/consumer.ts";
import { ClaimOps } from "../../src/coordinators/etcd/claim-ops.ts";
import { encodeOwner, Keys } from "../../src/coordinators/etcd/keys.ts";
import { EtcdStateStore } from "../../src/coordinators/etcd/state-store.ts";
import { EtcdTaskCommands } from "../../src/coordinators/etcd/task-commands.ts";
import { ClaimLostError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { Message } from "../../src/statemachine/types.ts";
import type { Handler, HandlerContext, HandlerResult } from "../../src/types.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import { Cleanup, makeClient, makeCoordinator, rawClient, uniqueNamespace } from "./helpers.ts";

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

/** What a promise rejects with (undefined if it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

function exposing(): { handler: Handler; contexts: HandlerContext[]; finish(r: HandlerResult): void } {
  const contexts: HandlerContext[] = [];
  let finish: (r: HandlerResult) => void = () => {};
  return {
    contexts,
    finish: (r) => finish(r),
    handler: {
      run: (_task, ctx) => {
        contexts.push(ctx);
        return new Promise<HandlerResult>((resolve) => {
          finish = resolve;
          ctx.signal.addEventListener("abort", () => resolve("release"), { once: true });
        });
      },
    },
  };
}

function node(ns: string, name: string, handler: Handler, leaseTtl = 3, claimConcurrency = 1): Consumer {
  const coordinator = makeCoordinator({ etcd, namespace: ns, node: name, cleanup, config: { leaseTtl } });
  const consumer = new Consumer({
    coordinator,
    node: name,
    handler,
    balanceEvery: Infinity,
    claimConcurrency,
    log: silentLogger,
  });
  cleanup.add(consumer, (c) => c.shutdown({ timeout: 5000 }));
  return consumer;
}

test("a checkpoint by a stale owner is rejected; the next owner reads the last fenced one; done removes it", async () => {
  const ns = uniqueNamespace("checkpoint");
  const keys = new Keys(ns);
  const raw = rawClient(etcd, cleanup);
  const client = makeClient(etcd, ns, cleanup);
  const a = exposing();
  const consumerA = node(ns, "a", a.handler);
  await consumerA.start();
  await client.submitTask("c1");
  const ctxA = await waitFor("a's handler", () => a.contexts[0]);
  expect(ctxA.lastCheckpoint).toBeUndefined();
  await ctxA.checkpoint({ page: 1 });
  expect(await raw.get(keys.checkpoint("c1")).string()).toBe('{"page":1}');
  // The checkpoint is not a task: the client's listing does not show it.
  expect((await client.tasks()).map((t) => t.id)).toEqual(["c1"]);

  // a's claim ends behind its back (as when its lease expired during a pause): b takes over.
  consumerA.freeze(); // a must not simply claim it again
  const b = exposing();
  await node(ns, "b", b.handler).start();
  await raw.delete().key(keys.owner("c1")).exec();
  const ctxB = await waitFor("b's handler", () => b.contexts[0]);
  expect(ctxB.token).toBeGreaterThan(ctxA.token);
  expect(await rejection(ctxA.checkpoint({ page: 2 }))).toBeInstanceOf(ClaimLostError);
  expect(ctxA.owned()).toBe(false);
  expect(ctxB.lastCheckpoint).toEqual({ page: 1 });
  await ctxB.checkpoint({ page: 3 });
  expect(await raw.get(keys.checkpoint("c1")).string()).toBe('{"page":3}');

  b.finish("done");
  await waitFor("the task to be deleted", async () => (await raw.get(keys.task("c1")).string()) === null);
  expect(await raw.get(keys.checkpoint("c1")).string()).toBeNull();
}, 30_000);

test("claims won in shared transactions hand every task its own checkpoint", async () => {
  const ns = uniqueNamespace("batch-checkpoint");
  const keys = new Keys(ns);
  const raw = rawClient(etcd, cleanup);
  const client = makeClient(etcd, ns, cleanup);
  const TASKS = 150; // several claim transactions of up to 64 claims each
  const ids = Array.from({ length: TASKS }, (_, i) => `b${String(i).padStart(3, "0")}`);
  await client.submitTasks(ids.map((id) => ({ id })));
  // Every other task has a checkpoint naming itself; the rest have none.
  await Promise.all(
    ids.filter((_, i) => i % 2 === 0).map((id) => raw.put(keys.checkpoint(id)).value(JSON.stringify({ id }))),
  );
  const seen = new Map<string, unknown>();
  const handler: Handler = {
    run: (task, ctx) => {
      seen.set(task.id, ctx.lastCheckpoint);
      return new Promise<HandlerResult>((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve("release"), { once: true }),
      );
    },
  };
  await node(ns, "batch", handler, 3, 256).start();
  await waitFor("every task running", () => seen.size === TASKS, { timeout: 20_000 });
  ids.forEach((id, i) => {
    expect(seen.get(id)).toEqual(i % 2 === 0 ? { id } : undefined);
  });
}, 30_000);

test("the etcd fences: a checkpoint, a state write and a command take with an old token change nothing", async () => {
  const ns = uniqueNamespace("fence");
  const keys = new Keys(ns);
  const raw = rawClient(etcd, cleanup);
  const ownerKey = keys.owner("f1");
  const claimAs = async (name: string): Promise<number> => {
    await raw.delete().key(ownerKey).exec();
    await raw.put(ownerKey).value(encodeOwner(name)).exec();
    return Number((await raw.get(ownerKey).exec()).kvs[0]!.create_revision);
  };
  await raw.put(keys.task("f1")).value("").exec();
  const old = await claimAs("n1");
  const store = new EtcdStateStore(raw, ns);
  await store.store("f1", { code: "runnable" }, { node: "n1", token: old });
  // The same node claims it again (a new claim): the old token is stale even though the name matches.
  const current = await claimAs("n1");
  await store.store("f1", { code: "paused" }, { node: "n1", token: current });
  expect(await rejection(store.store("f1", { code: "completed" }, { node: "n1", token: old }))).toBeInstanceOf(
    ClaimLostError,
  );
  expect(await rejection(store.store("f1", { code: "completed" }, { node: "n2", token: current }))).toBeInstanceOf(
    ClaimLostError,
  );
  expect(await raw.get(keys.state("f1")).string()).toBe('{"state":"paused"}');

  const ops = new ClaimOps({
    etcd: raw,
    keys,
    ownerValue: encodeOwner("n1"),
    requestTimeout: 5000,
    log: silentLogger,
    activeLease: () => undefined,
    alive: () => true,
    isHeld: () => true,
    mayHaveLanded: () => undefined,
  });
  await ops.checkpoint("f1", current, '{"ok":true}');
  expect(await rejection(ops.checkpoint("f1", old, '{"stale":true}'))).toBeInstanceOf(ClaimLostError);
  expect(await raw.get(keys.checkpoint("f1")).string()).toBe('{"ok":true}');

  // A listener holding the old claim takes no command; one with the current claim does.
  await new EtcdTaskCommands(raw, ns, "operator", silentLogger).send("f1", { code: "kill" });
  const listen = (token: number) => {
    const controller = new AbortController();
    const got: Message[] = [];
    const done = (async () => {
      for await (const m of new EtcdTaskCommands(raw, ns, "n1", silentLogger).listen("f1", controller.signal, {
        node: "n1",
        token,
      }))
        got.push(m);
    })();
    return { got, stop: () => (controller.abort(), done) };
  };
  const stale = listen(old);
  await staysFalse("the stale listener to take the command", () => stale.got.length > 0, 300);
  await stale.stop();
  expect(await raw.get(keys.taskCommands("f1")).string()).not.toBeNull();
  const fresh = listen(current);
  await waitFor("the current owner to take it", () => fresh.got.length === 1);
  await fresh.stop();
  expect(fresh.got[0]!.code).toBe("kill");
}, 30_000);

test("a wall clock jumping ±1 h moves no claim deadline and leaves owned() true", async () => {
  const ns = uniqueNamespace("wallclock");
  const client = makeClient(etcd, ns, cleanup);
  const h = exposing();
  const consumer = node(ns, "w", h.handler, 3);
  const suspended: unknown[] = [];
  consumer.on("suspended", (e) => suspended.push(e));
  await consumer.start();
  await client.submitTask("w1");
  const ctx = await waitFor("the handler", () => h.contexts[0]);
  const realNow = Date.now;
  try {
    for (const jump of [3_600_000, -3_600_000]) {
      const before = ctx.claimDeadline();
      Date.now = () => realNow() + jump;
      // Across a few keepalives (every 0.6 s at TTL 3 s) the deadline only moves by renewals.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const after = ctx.claimDeadline();
      expect(ctx.owned()).toBe(true);
      expect(after).toBeGreaterThanOrEqual(before);
      expect(after - before).toBeLessThan(3000);
      // Seen from the (real) monotonic clock, the deadline is still within one TTL from now.
      const remaining = after - (performance.timeOrigin + performance.now());
      expect(remaining).toBeGreaterThan(0);
      expect(remaining).toBeLessThanOrEqual(3000);
      expect(await ctx.sleep(10)).toBe(true);
      Date.now = realNow;
    }
  } finally {
    Date.now = realNow;
  }
  expect(suspended).toEqual([]);
  expect(h.contexts.length).toBe(1);
}, 30_000);
