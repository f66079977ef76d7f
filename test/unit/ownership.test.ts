/**
 * The pause-proof handler primitives on the memory coordinator: ctx.owned(), ctx.sleep(ms),
 * ctx.checkpoint(value) / ctx.lastCheckpoint, and the stall watch behind them.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { MAX_CHECKPOINT_BYTES } from "../../src/checkpoint.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { MemoryStateStore } from "../../src/coordinators/memory/state-store.ts";
import { CheckpointTooLargeError, ClaimLostError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { Coordinator, Handler, HandlerContext, HandlerResult } from "../../src/types.ts";
import { waitFor } from "../support/wait.ts";

const live: Consumer[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((c) => c.shutdown({ timeout: 1000 })));
});

function consumer(coordinator: Coordinator, node: string, handler: Handler): Consumer {
  const c = new Consumer({ coordinator, node, handler, balanceEvery: Infinity, log: silentLogger });
  live.push(c);
  return c;
}

/** A handler that hands out its context and waits until told to return. */
function exposing(): {
  handler: Handler;
  ctx: () => HandlerContext | undefined;
  finish(r: HandlerResult): void;
  contexts: HandlerContext[];
} {
  const contexts: HandlerContext[] = [];
  let finish: (r: HandlerResult) => void = () => {};
  return {
    contexts,
    ctx: () => contexts.at(-1),
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

/** A memory coordinator that pretends a lease: a stall margin and a fixed monotonic deadline. */
function leased(inner: Coordinator, stallMargin: number, deadline: () => number = () => Infinity): Coordinator {
  return {
    name: inner.name,
    get cluster() {
      return inner.cluster;
    },
    client: inner.client,
    init: (ctx) => inner.init(ctx),
    claim: (t) => inner.claim(t),
    release: (t) => inner.release(t),
    done: (t) => inner.done(t),
    claimDeadline: () => inner.claimDeadline(),
    claimDeadlineMonotonic: deadline,
    stallMargin,
    close: () => inner.close(),
  };
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // a stall: nothing else runs
  }
}

describe("ctx.owned() and ctx.sleep(ms) on the memory coordinator", () => {
  test("owned while running; sleep resolves true after ms; a stop makes owned false and wakes a sleep with false at once", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(broker.coordinator("n1"), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    expect(ctx.owned()).toBe(true);
    const t0 = performance.now();
    expect(await ctx.sleep(30)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    const long = ctx.sleep(60_000);
    const stoppedAt = performance.now();
    c.stopTask("t1");
    expect(await long).toBe(false);
    expect(performance.now() - stoppedAt).toBeLessThan(1000);
    expect(ctx.owned()).toBe(false);
    expect(await ctx.sleep(1)).toBe(false);
  });

  test("a task deleted while running: owned false, sleep false", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(broker.coordinator("n1"), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    const sleeping = ctx.sleep(60_000);
    await broker.client().deleteTask("t1");
    expect(await sleeping).toBe(false);
    expect(ctx.owned()).toBe(false);
  });

  test("memory claims have no lease: a long stall does not cost them (no stall margin)", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(broker.coordinator("n1"), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    busyWait(300);
    expect(ctx.owned()).toBe(true);
    expect(await ctx.sleep(1)).toBe(true);
  });

  test("a stall longer than the margin: the first check afterwards says false, and no step runs after it", async () => {
    const broker = new MemoryBroker();
    const steps: number[] = []; // the token of each step
    const ended: number[] = [];
    const contexts: HandlerContext[] = [];
    const handler: Handler = {
      async run(_task, ctx) {
        contexts.push(ctx);
        while (await ctx.sleep(5)) steps.push(ctx.token);
        ended.push(ctx.token);
        return "release";
      },
    };
    const c = consumer(leased(broker.coordinator("n1"), 150), "n1", handler);
    await c.start();
    await broker.client().submitTask("t1");
    await waitFor("a few steps", () => steps.length >= 3);
    const first = contexts[0]!;
    // The handler's 5 ms timer is overdue when the stall ends, so it may fire before the heartbeat.
    busyWait(400);
    const before = steps.length;
    await waitFor("the first run to end", () => ended.includes(first.token));
    expect(steps.slice(before).filter((t) => t === first.token)).toEqual([]);
    expect(first.owned()).toBe(false);
    expect((first.signal.reason as { reason?: string }).reason).toBe("lease");
    // Released and claimed again here (a new claim, after the stall): that one runs normally.
    await waitFor("a step under the next claim", () => steps.some((t) => t > first.token));
  });

  test("a stall shorter than the margin changes nothing", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(leased(broker.coordinator("n1"), 1000), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    busyWait(200);
    expect(ctx.owned()).toBe(true);
    expect(await ctx.sleep(5)).toBe(true);
  });

  test("the claim deadline wakes a sleep with false when it passes, long before ms", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const deadline = performance.now() + 400;
    const c = consumer(
      leased(broker.coordinator("n1"), Infinity, () => deadline),
      "n1",
      h.handler,
    );
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    expect(ctx.owned()).toBe(true);
    expect(await ctx.sleep(60_000)).toBe(false);
    expect(performance.now()).toBeGreaterThanOrEqual(deadline);
    expect(performance.now() - deadline).toBeLessThan(2000);
    expect(ctx.owned()).toBe(false);
  });

  test("sleep with a bad ms rejects with a TypeError naming it", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(broker.coordinator("n1"), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    await expect(ctx.sleep(-1)).rejects.toThrow(/ctx.sleep\(ms\): ms must be a number >= 0/);
    await expect(ctx.sleep(Number.NaN)).rejects.toThrow(TypeError);
  });
});

describe("ctx.checkpoint(value) on the memory coordinator", () => {
  test("the next owner reads the last fenced checkpoint; a stale owner's checkpoint is rejected and changes nothing", async () => {
    const broker = new MemoryBroker();
    const a = exposing();
    const coordA = broker.coordinator("a");
    const ca = consumer(coordA, "a", a.handler);
    await ca.start();
    await broker.client().submitTask("t1");
    const ctxA = await waitFor("a's handler", () => a.ctx());
    expect(ctxA.lastCheckpoint).toBeUndefined();
    await ctxA.checkpoint({ done: 1 });
    // a's claims die with its coordinator (as with an expired lease); its handler still runs.
    await coordA.close();
    const b = exposing();
    const cb = consumer(broker.coordinator("b"), "b", b.handler);
    await cb.start();
    const ctxB = await waitFor("b's handler", () => b.ctx());
    expect(ctxB.token).toBeGreaterThan(ctxA.token);
    await expect(ctxA.checkpoint({ done: 2 })).rejects.toBeInstanceOf(ClaimLostError);
    expect(ctxA.owned()).toBe(false);
    expect(ctxB.lastCheckpoint).toEqual({ done: 1 });
    await ctxB.checkpoint({ done: 3 });
    b.finish("release");
    await waitFor("b to claim it again", () => b.contexts.length === 2);
    expect(b.ctx()!.lastCheckpoint).toEqual({ done: 3 });
    // done removes the checkpoint with the task
    b.finish("done");
    await waitFor("the task to be gone", async () => (await broker.client().tasks()).length === 0);
    expect(broker.checkpointOf("t1")).toBeUndefined();
  });

  test("non-JSON and oversized checkpoints are refused with errors naming the problem and the limit", async () => {
    const broker = new MemoryBroker();
    const h = exposing();
    const c = consumer(broker.coordinator("n1"), "n1", h.handler);
    await c.start();
    await broker.client().submitTask("t1");
    const ctx = await waitFor("the handler", () => h.ctx());
    await expect(ctx.checkpoint(undefined)).rejects.toThrow(/must be a JSON value/);
    await expect(ctx.checkpoint(10n)).rejects.toThrow(/not JSON-serialisable/);
    const big = "x".repeat(MAX_CHECKPOINT_BYTES);
    const err = await ctx.checkpoint({ big }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointTooLargeError);
    expect(String(err)).toContain("MAX_CHECKPOINT_BYTES");
    expect(broker.checkpointOf("t1")).toBeUndefined();
    expect(ctx.owned()).toBe(true); // refusing a value does not cost the claim
  });
});

describe("fenced state writes on the memory store", () => {
  test("a write with a claim that no longer holds is refused; the current owner's goes through", async () => {
    const broker = new MemoryBroker();
    const store = new MemoryStateStore({ fence: (id, claim) => broker.holds(id, claim.node, claim.token) });
    const a = exposing();
    const coordA = broker.coordinator("a");
    await consumer(coordA, "a", a.handler).start();
    await broker.client().submitTask("t1");
    const ctxA = await waitFor("a's handler", () => a.ctx());
    await store.store("t1", { code: "runnable" }, { node: "a", token: ctxA.token });
    await coordA.close();
    const b = exposing();
    await consumer(broker.coordinator("b"), "b", b.handler).start();
    const ctxB = await waitFor("b's handler", () => b.ctx());
    await store.store("t1", { code: "paused" }, { node: "b", token: ctxB.token });
    await expect(store.store("t1", { code: "completed" }, { node: "a", token: ctxA.token })).rejects.toBeInstanceOf(
      ClaimLostError,
    );
    expect(store.get("t1")).toEqual({ code: "paused" });
  });
});
