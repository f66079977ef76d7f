/**
 * The Consumer on the memory coordinator: Go Metafora's tests T8–T13 adapted to our semantics, plus lost
 * claims, suspend/resume, maxTasks, routing, node commands, periodic balance and shutdown.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { DumbBalancer } from "../../src/balancers/dumb.ts";
import { balance, freeze, stopTask, unfreeze } from "../../src/command.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import { ConfigError, NodeNameTakenError, StopError } from "../../src/errors.ts";
import { defineHandler } from "../../src/handler.ts";
import type { Balancer, ClaimDecision, Handler, StopReason, Task } from "../../src/types.ts";
import { deferred, staysFalse, waitFor } from "../support/wait.ts";
import { blockingHandler, captureLog, consumerOn, exposeContext, recordEvents } from "./helpers.ts";

const live: Consumer[] = [];
/** Track a consumer so afterEach shuts it down even when a test fails. */
function track<C extends Consumer>(c: C): C {
  live.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(live.splice(0).map((c) => c.shutdown({ timeout: 1000 }).then(() => c.shutdown())));
});

describe("claiming and finishing (T8–T12)", () => {
  test("T8: two preloaded tasks both start; tasks() lists them sorted; shutdown and run() both return", async () => {
    const broker = new MemoryBroker();
    await broker.client().submitTask("t2");
    await broker.client().submitTask("t1");
    const h = blockingHandler("work");
    const c = track(consumerOn(broker, "n1", { handler: h.handler }));
    const ran = c.run();
    await waitFor("both handlers to start", () => h.started.length === 2);
    expect(c.state).toBe("running");
    expect(c.tasks().map((t) => t.task.id)).toEqual(["t1", "t2"]);
    expect(c.tasks()[0]!.handler).toBe("work");
    const report = await c.shutdown({ timeout: 5000 });
    expect(report).toEqual({ clean: true, stuck: [] });
    expect(await ran).toEqual(report);
    expect(c.state).toBe("stopped");
    expect(c.tasks()).toEqual([]);
  });

  test("T9: a balancer that accepts only ok-task (others ignored for 100 h); periodic balance sees exactly [ok-task]", async () => {
    const broker = new MemoryBroker();
    for (const id of ["ok-task", "no-1", "no-2"]) await broker.client().submitTask(id);
    const seen: string[][] = [];
    let ctxTasks: () => { task: Task }[] = () => [];
    const balancer: Balancer = {
      init(ctx) {
        ctxTasks = ctx.tasks;
      },
      canClaim(task): ClaimDecision {
        return task.id === "ok-task" ? { claim: true } : { claim: false, until: Date.now() + 100 * 3600_000 };
      },
      balance() {
        seen.push(ctxTasks().map((t) => t.task.id));
        return [];
      },
    };
    const h = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handler: h.handler, balancer, balanceEvery: 0, balanceJitter: 20 }));
    await c.start();
    await waitFor("a balance that sees ok-task running", () => seen.some((s) => s.length === 1));
    expect(seen.find((s) => s.length === 1)).toEqual(["ok-task"]);
    expect(h.started.map((s) => s.id)).toEqual(["ok-task"]);
    expect(c.ignores().sort()).toEqual(["no-1", "no-2"]);
    await c.shutdown({ timeout: 5000 });
    expect(c.tasks()).toEqual([]);
  });

  test("T10: a handler returning done → coordinator done (task deleted), never released", async () => {
    const broker = new MemoryBroker();
    const c = track(consumerOn(broker, "n1", { handler: { run: async () => "done" } }));
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t1");
    await waitFor("done event", () => ev.ids("done").includes("t1"));
    expect(ev.ids("released")).toEqual([]);
    expect(await broker.client().tasks()).toEqual([]);
  });

  test("T11 adapted: throwing/rejecting handlers are logged with stack, released (not done), and backed off on this node", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const runs = new Map<string, number[]>();
    const handler: Handler = {
      run(task) {
        runs.set(task.id, [...(runs.get(task.id) ?? []), Date.now()]);
        if (task.id === "sync") throw new Error("sync boom");
        if (task.id === "async") return Promise.reject(new Error("async boom"));
        return Promise.reject("a string, not an Error");
      },
    };
    const c = track(consumerOn(broker, "n1", { handler, log, errorBackoff: { initial: 100, max: 400 } }));
    const ev = recordEvents(c);
    await c.start();
    for (const id of ["sync", "async", "value"]) await broker.client().submitTask(id);
    await waitFor("three handler errors", () => ev.ids("handlerError").length >= 3);
    await waitFor("three releases", () => new Set(ev.ids("released")).size === 3);
    expect(ev.ids("done")).toEqual([]);
    expect((await broker.client().tasks()).map((t) => t.id)).toEqual(["async", "sync", "value"]);
    expect(log.text("error")).toContain("sync boom");
    expect(log.text("error")).toMatch(/at .*consumer\.test\.ts/); // the stack is logged
    expect(log.text("error")).toContain("a string, not an Error");
    // Back-off: retried on this node after 100 ms, then 200 ms, then 400 ms (capped).
    await waitFor("four runs of sync", () => (runs.get("sync")?.length ?? 0) >= 4, { timeout: 10_000 });
    const t = runs.get("sync")!;
    expect(t[1]! - t[0]!).toBeGreaterThanOrEqual(95);
    expect(t[2]! - t[1]!).toBeGreaterThanOrEqual(195);
    expect(t[3]! - t[2]!).toBeGreaterThanOrEqual(395);
    expect(c.ignores()).toContain("sync");
  });

  test("T12: blocking tasks are neither done nor released until shutdown; then all released with reason shutdown", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handler: h.handler }));
    const ev = recordEvents(c);
    await c.start();
    for (const id of ["a", "b", "c"]) await broker.client().submitTask(id);
    await waitFor("three handlers started", () => h.started.length === 3);
    await staysFalse("a release or done before shutdown", () => ev.ids("released").length + ev.ids("done").length, 100);
    const report = await c.shutdown({ timeout: 5000 });
    expect(report).toEqual({ clean: true, stuck: [] });
    expect(ev.ids("released").sort()).toEqual(["a", "b", "c"]);
    expect(ev.ids("done")).toEqual([]);
    for (const { ctx } of h.started) {
      expect(ctx.signal.reason).toBeInstanceOf(StopError);
      expect((ctx.signal.reason as StopError).reason).toBe("shutdown");
    }
    const left = await broker.client().tasks();
    expect(left.map((t) => [t.id, t.owner])).toEqual([
      ["a", undefined],
      ["b", undefined],
      ["c", undefined],
    ]);
  });

  test("a handler returning something other than done/release is warned about and released", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const c = track(
      consumerOn(broker, "n1", { handler: { run: () => "finished" as never }, log, balancer: new DumbBalancer() }),
    );
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("release of t", () => ev.ids("released").includes("t"));
    expect(log.text("warn")).toContain(`returned "finished"; expected "done" or "release"; releasing`);
    expect(ev.ids("done")).toEqual([]);
    expect((await broker.client().tasks()).map((t) => t.id)).toEqual(["t"]);
  });
});

describe("shutdown (T13 adapted: bounded)", () => {
  test("T13: a handler ignoring stop blocks neither balance commands nor shutdown past its timeout; it is reported stuck", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const stuck = deferred<"release">();
    let balances = 0;
    const balancer: Balancer = { canClaim: () => ({ claim: true }), balance: () => (balances++, []) };
    const c = track(consumerOn(broker, "n1", { handler: { run: () => stuck.promise }, balancer, log }));
    await c.start();
    await broker.client().submitTask("slow");
    await waitFor("slow to run", () => c.tasks().length === 1);
    for (let i = 0; i < 3; i++) await broker.client().submitCommand("n1", balance());
    await waitFor("three balances", () => balances === 3);
    const t0 = Date.now();
    let settled = false;
    const shutdown = c.shutdown({ timeout: 500 }).finally(() => (settled = true));
    await staysFalse("shutdown to finish while the handler still runs (within its timeout)", () => settled, 100);
    const report = await shutdown;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(report).toEqual({ clean: false, stuck: ["slow"] });
    expect(c.state).toBe("stopped");
    expect(log.text("warn")).toContain("did not stop: slow");
    expect(await broker.client().nodes()).toEqual([]); // the coordinator was closed anyway
    stuck.resolve("release");
    await waitFor("the late return to be logged and ignored", () =>
      log.text("warn").includes("after shutdown gave up on it; ignored"),
    );
  });

  test("a second shutdown call while one is waiting forces completion at once", async () => {
    const broker = new MemoryBroker();
    const never = new Promise<"release">(() => {});
    const c = track(consumerOn(broker, "n1", { handler: { run: () => never } }));
    await c.start();
    await broker.client().submitTask("stuck");
    await waitFor("stuck to run", () => c.tasks().length === 1);
    const first = c.shutdown({ timeout: 60_000 });
    expect(c.state).toBe("stopping");
    const t0 = Date.now();
    const second = c.shutdown();
    const [r1, r2] = await Promise.all([first, second]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r1).toEqual({ clean: false, stuck: ["stuck"] });
    expect(r2).toEqual(r1);
    expect(await c.shutdown()).toEqual(r1); // after stopping: the same report
  });

  test("coordinator.close() that never settles does not hang shutdown", async () => {
    const broker = new MemoryBroker();
    const inner = broker.coordinator("n1");
    const coordinator = { ...exposeContext(inner), close: () => new Promise<void>(() => {}) };
    const log = captureLog();
    const c = track(
      new Consumer({
        coordinator,
        node: "n1",
        handler: { run: async () => "done" },
        balanceEvery: Infinity,
        closeTimeout: 200,
        log,
      }),
    );
    await c.start();
    expect(await c.shutdown({ timeout: 1000 })).toEqual({ clean: true, stuck: [] });
    expect(log.text("warn")).toContain("gave up waiting for memory:n1 to close");
    await inner.close();
  });

  test("shutdown before start: stopped at once, coordinator never touched; start afterwards rejects", async () => {
    const broker = new MemoryBroker();
    const c = consumerOn(broker, "n1", { handler: { run: async () => "done" } });
    expect(await c.shutdown()).toEqual({ clean: true, stuck: [] });
    expect(c.state).toBe("stopped");
    expect(await c.run()).toEqual({ clean: true, stuck: [] });
    await expect(c.start()).rejects.toThrow(/cannot be restarted/);
    expect(await broker.client().nodes()).toEqual([]);
  });

  test("a claim that completes while shutting down is handed straight back, and no handler runs", async () => {
    const broker = new MemoryBroker();
    const inner = broker.coordinator("n1");
    const gate = deferred();
    let asked = false;
    const coordinator = {
      ...exposeContext(inner),
      claim: async (t: Task) => ((asked = true), await gate.promise, inner.claim(t)),
    };
    const c = track(
      new Consumer({
        coordinator,
        node: "n1",
        handler: { run: async () => "done" },
        balanceEvery: Infinity,
        log: captureLog(),
      }),
    );
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("the claim to be in flight", () => asked);
    const done = c.shutdown({ timeout: 5000 });
    gate.resolve();
    expect(await done).toEqual({ clean: true, stuck: [] });
    expect(ev.ids("claimed")).toEqual([]);
    expect((await broker.client().tasks())[0]).toEqual({ id: "t", props: {} }); // unowned, not done
  });
});

describe("stopping and losing tasks", () => {
  test("stopTask: every request reaches onStop (count 1, 2); the signal aborts once with the first reason", async () => {
    const broker = new MemoryBroker();
    const calls: [StopReason, number][] = [];
    let aborts = 0;
    const gate = deferred<"release">();
    const c = track(
      consumerOn(broker, "n1", {
        handler: {
          run(_task, ctx) {
            ctx.onStop((reason, count) => calls.push([reason, count]));
            ctx.signal.addEventListener("abort", () => aborts++);
            return gate.promise;
          },
        },
      }),
    );
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("t to run", () => c.tasks().length === 1);
    expect(c.stopTask("t", "command")).toBe(true);
    expect(c.stopTask("t", "balance")).toBe(true);
    expect(calls).toEqual([
      ["command", 1],
      ["balance", 2],
    ]);
    expect(aborts).toBe(1);
    const view = c.tasks()[0]!;
    expect(view.stopReason).toBe("command");
    expect(view.stopped).toBeGreaterThan(0);
    expect(c.stopTask("missing")).toBe(false);
    gate.resolve("release");
  });

  test("a running task deleted through the client is stopped with reason deleted; neither released nor done", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handler: h.handler }));
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("t to run", () => h.started.length === 1);
    expect(await broker.client().deleteTask("t")).toBe(true);
    await waitFor("lost event", () => ev.ids("lost").includes("t"));
    expect((h.started[0]!.ctx.signal.reason as StopError).reason).toBe("deleted");
    expect(ev.all.find((e) => e.event === "lost")!.payload).toEqual({ taskId: "t", reason: "deleted" });
    expect(ev.ids("released")).toEqual([]);
    expect(ev.ids("done")).toEqual([]);
    expect(c.tasks()).toEqual([]);
  });

  test("lost claim: stopped with reason lost, not released; an announcement received meanwhile is claimed after it returns", async () => {
    const broker = new MemoryBroker();
    const coordinator = exposeContext(broker.coordinator("n1"));
    const h = blockingHandler();
    const c = track(
      new Consumer({ coordinator, node: "n1", handler: h.handler, balanceEvery: Infinity, log: captureLog() }),
    );
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("t to run", () => h.started.length === 1);
    const task = h.started[0]!;
    // The coordinator sees the claim vanish: it reports the loss and the task as claimable again.
    // Simulate the broker side too, so the task really is free: release it behind the consumer's back.
    await coordinator.release({ id: "t", props: {} });
    coordinator.ctx().lost("t", "lost");
    await waitFor("lost event", () => ev.ids("lost").includes("t"));
    expect((task.ctx.signal.reason as StopError).reason).toBe("lost");
    expect(ev.ids("released")).toEqual([]);
    await waitFor("t claimed again once its old run returned", () => h.started.length === 2);
    expect(h.started[1]!.ctx.token).toBeGreaterThan(task.ctx.token);
  });
});

describe("suspend and resume (lease trouble)", () => {
  test("suspend aborts every handler with reason lease, resolves once they returned, claims nothing until resume", async () => {
    const broker = new MemoryBroker();
    const coordinator = exposeContext(broker.coordinator("n1"));
    const h = blockingHandler();
    const c = track(
      new Consumer({ coordinator, node: "n1", handler: h.handler, balanceEvery: Infinity, log: captureLog() }),
    );
    const ev = recordEvents(c);
    await c.start();
    for (const id of ["a", "b"]) await broker.client().submitTask(id);
    await waitFor("two running", () => h.active.size === 2);
    const deadline = Date.now() + 10_000;
    await coordinator.ctx().suspend(deadline);
    expect(c.state).toBe("suspended");
    expect(h.active.size).toBe(0);
    for (const s of h.started) expect((s.ctx.signal.reason as StopError).reason).toBe("lease");
    expect(ev.all.find((e) => e.event === "suspended")!.payload).toEqual({ deadline });
    await staysFalse("a claim while suspended", () => h.active.size > 0, 150);
    coordinator.ctx().resume();
    expect(c.state).toBe("running");
    await waitFor("both claimed again after resume", () => h.active.size === 2);
    expect(ev.ids("resumed")).toHaveLength(1);
  });

  test("suspend gives up at the deadline and names handlers that did not stop", async () => {
    const broker = new MemoryBroker();
    const coordinator = exposeContext(broker.coordinator("n1"));
    const log = captureLog();
    const gate = deferred<"release">();
    const c = track(
      new Consumer({ coordinator, node: "n1", handler: { run: () => gate.promise }, balanceEvery: Infinity, log }),
    );
    await c.start();
    await broker.client().submitTask("deaf");
    await waitFor("deaf to run", () => c.tasks().length === 1);
    const t0 = Date.now();
    await coordinator.ctx().suspend(Date.now() + 200);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(log.text("error")).toContain("claim deadline passed with handlers still running: deaf");
    gate.resolve("release");
  });
});

describe("capacity and routing", () => {
  test("maxTasks: a full node claims nothing more; a freed slot is refilled", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handler: h.handler, maxTasks: 2 }));
    await c.start();
    for (let i = 0; i < 5; i++) await broker.client().submitTask(`t${i}`);
    await waitFor("two running", () => h.active.size === 2);
    await staysFalse("a third claim while full", () => h.active.size > 2, 150);
    h.finish(h.started[0]!.id, "done");
    await waitFor("slot refilled", () => h.started.length === 3 && h.active.size === 2);
  });

  test("routing: each task goes to the handler it names; a task with no handler here is never claimed", async () => {
    const broker = new MemoryBroker();
    const a = blockingHandler();
    const b = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handlers: { crawl: a.handler, mail: b.handler } }));
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("crawl:1");
    await broker.client().submitTask("mail:1");
    await broker.client().submitTask("x", { handler: "mail" });
    await broker.client().submitTask("other:1");
    await waitFor("three routed tasks running", () => a.active.size + b.active.size === 3);
    expect([...a.active.keys()]).toEqual(["crawl:1"]);
    expect([...b.active.keys()].sort()).toEqual(["mail:1", "x"]);
    await staysFalse("other:1 to be claimed", () => ev.ids("claimed").includes("other:1"), 150);
    const claimed = ev.all
      .filter((e) => e.event === "claimed")
      .map((e) => (e.payload as { handler: string }).handler)
      .sort();
    expect(claimed).toEqual(["crawl", "mail", "mail"]);
    expect((await broker.client().tasks()).find((t) => t.id === "other:1")!.owner).toBeUndefined();
  });

  test("routing with a Map, and a node with the right handler picks up what another node skips", async () => {
    const broker = new MemoryBroker();
    const a = blockingHandler();
    const b = blockingHandler();
    track(consumerOn(broker, "n1", { handlers: new Map([["crawl", a.handler]]) }));
    track(consumerOn(broker, "n2", { handlers: new Map([["mail", b.handler]]) }));
    await Promise.all(live.map((c) => c.start()));
    await broker.client().submitTask("mail:1");
    await broker.client().submitTask("crawl:1");
    await waitFor("each on its node", () => a.active.has("crawl:1") && b.active.has("mail:1"));
  });
});

describe("node commands", () => {
  test("commands run in submission order (FIFO); freeze stops claiming, unfreeze resumes; repeats are idempotent", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const h = blockingHandler();
    const c = track(consumerOn(broker, "n1", { handler: h.handler, log }));
    const ev = recordEvents(c);
    await c.start();
    const sent = [freeze(), freeze(), unfreeze(), unfreeze(), freeze()];
    for (const cmd of sent) await broker.client().submitCommand("n1", cmd);
    expect(
      ev.all
        .filter((e) => e.event === "command")
        .map((e) => (e.payload as { command: { command: string } }).command.command),
    ).toEqual(sent.map((s) => s.command));
    expect(c.frozen()).toBe(true);
    expect(log.text("info")).toContain("already frozen");
    expect(log.text("info")).toContain("unfreeze: not frozen");
    await broker.client().submitTask("t");
    await staysFalse("a claim while frozen", () => h.started.length > 0, 150);
    await broker.client().submitCommand("n1", unfreeze());
    await waitFor("claimed after unfreeze", () => h.started.length === 1);
  });

  test("balance and stop_task work while frozen; a command for another node never arrives here", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    let balances = 0;
    const balancer: Balancer = { canClaim: () => ({ claim: true }), balance: () => (balances++, []) };
    const c = track(consumerOn(broker, "n1", { handler: h.handler, balancer }));
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("t to run", () => h.active.size === 1);
    c.freeze();
    await broker.client().submitCommand("n1", balance());
    await waitFor("balance while frozen", () => balances === 1);
    await broker.client().submitCommand("n2", stopTask("t"));
    await staysFalse("a stop meant for n2", () => h.active.size === 0, 100);
    await broker.client().submitCommand("n1", stopTask("t"));
    await waitFor("t stopped by command while frozen", () => h.active.size === 0);
    expect((h.started[0]!.ctx.signal.reason as StopError).reason).toBe("command");
  });

  test("malformed and unknown commands are logged and dropped; the node carries on", async () => {
    const broker = new MemoryBroker();
    const coordinator = exposeContext(broker.coordinator("n1"));
    const log = captureLog();
    const h = blockingHandler();
    const c = track(new Consumer({ coordinator, node: "n1", handler: h.handler, balanceEvery: Infinity, log }));
    await c.start();
    await broker.client().submitCommand("n1", { command: "stop_task" });
    await broker.client().submitCommand("n1", { command: "stop_task", parameters: { task: 42 } });
    await broker.client().submitCommand("n1", { command: "reticulate" });
    coordinator.ctx().command(null as never);
    coordinator.ctx().command({ command: 7 } as never);
    expect(log.text("error")).toContain(`stop_task command needs a "task" parameter with a task id, got null; dropped`);
    expect(log.text("error")).toContain(`got {"task":42}; dropped`);
    expect(log.text("warn")).toContain(`unknown node command "reticulate"; dropped`);
    expect(log.lines.filter((l) => l.message.includes("malformed node command"))).toHaveLength(2);
    expect(c.state).toBe("running");
    await broker.client().submitTask("t");
    await waitFor("still claiming", () => h.started.length === 1);
  });
});

describe("periodic balance", () => {
  test("cycles run sequentially every balanceEvery + jitter; stopped tasks come from balance()", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    const times: number[] = [];
    let first = true;
    const balancer: Balancer = {
      canClaim: () => ({ claim: true }),
      balance() {
        times.push(Date.now());
        if (first && h.active.has("t")) {
          first = false;
          return ["t", "unknown"];
        }
        return [];
      },
    };
    const log = captureLog();
    const c = track(
      consumerOn(broker, "n1", { handler: h.handler, balancer, balanceEvery: 60, balanceJitter: 40, log }),
    );
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("four balance cycles", () => times.length >= 4, { timeout: 10_000 });
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(58);
    await waitFor("t stopped for balance", () =>
      h.started.some((s) => (s.ctx.signal.reason as StopError | undefined)?.reason === "balance"),
    );
    expect(log.text("warn")).toContain(`stop "unknown" (balance): not running on this node`);
  });

  test("a cycle that falls due while frozen runs right after unfreeze", async () => {
    const broker = new MemoryBroker();
    let balances = 0;
    const balancer: Balancer = { canClaim: () => ({ claim: true }), balance: () => (balances++, []) };
    const c = track(
      consumerOn(broker, "n1", { handler: { run: async () => "done" }, balancer, balanceEvery: 50, balanceJitter: 0 }),
    );
    c.freeze();
    await c.start();
    await staysFalse("a balance while frozen", () => balances > 0, 200);
    c.unfreeze();
    await waitFor("the due balance", () => balances >= 1);
  });

  test("balanceNow() returns the ids it stopped; a throwing balancer is logged, not fatal", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const h = blockingHandler();
    let mode: "ids" | "throw" = "ids";
    const balancer: Balancer = {
      canClaim: () => ({ claim: true }),
      balance() {
        if (mode === "throw") throw new Error("balancer bug");
        return ["a", "nope"];
      },
    };
    const c = track(consumerOn(broker, "n1", { handler: h.handler, balancer, log }));
    await c.start();
    await broker.client().submitTask("a");
    await waitFor("a runs", () => h.active.has("a"));
    expect(await c.balanceNow()).toEqual(["a"]);
    mode = "throw";
    expect(await c.balanceNow()).toEqual([]);
    expect(log.text("error")).toContain("balancer failed: Error: balancer bug");
  });
});

describe("start, options, robustness", () => {
  test("a second live node with the same name fails to start with NodeNameTakenError; run() rejects too", async () => {
    const broker = new MemoryBroker();
    const c1 = track(consumerOn(broker, "dup", { handler: { run: async () => "done" } }));
    await c1.start();
    const c2 = consumerOn(broker, "dup", { handler: { run: async () => "done" } });
    await expect(c2.start()).rejects.toBeInstanceOf(NodeNameTakenError);
    expect(c2.state).toBe("stopped");
    await expect(c2.run()).rejects.toBeInstanceOf(NodeNameTakenError);
    await c1.shutdown();
    const c3 = track(consumerOn(broker, "dup", { handler: { run: async () => "done" } }));
    await c3.start(); // the name is free again
  });

  test("bad options fail fast with a ConfigError naming the option", () => {
    const broker = new MemoryBroker();
    const coordinator = broker.coordinator("n");
    const handler: Handler = { run: async () => "done" };
    expect(() => new Consumer({ coordinator, node: "", handler })).toThrow(/"node" must be a non-empty string/);
    expect(() => new Consumer({ coordinator, node: "n" })).toThrow(/needs a "handler" or a "handlers" map/);
    expect(() => new Consumer({ coordinator, node: "n", handler, handlers: {} })).toThrow(ConfigError);
    expect(() => new Consumer({ coordinator, node: "n", handler, maxTasks: 0 })).toThrow(
      /"maxTasks" must be an integer >= 1/,
    );
    expect(() => new Consumer({ coordinator, node: "n", handler, balanceEvery: -1 })).toThrow(/"balanceEvery"/);
    expect(() => new Consumer({ coordinator, node: "n", handlers: { x: {} as Handler } })).toThrow(
      /handler "x" must be an object with a run/,
    );
    expect(() => new Consumer({ coordinator, node: "n", handler, errorBackoff: { initial: 10, max: 1 } })).toThrow(
      /"errorBackoff"/,
    );
  });

  test("handler context: node, token, claimDeadline (Infinity on memory), a client that works, a tagged logger", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    const seen: { node: string; token: number; deadline: number }[] = [];
    const c = track(
      consumerOn(broker, "n1", {
        log,
        handler: defineHandler({
          async run(task, ctx) {
            seen.push({ node: ctx.node, token: ctx.token, deadline: ctx.claimDeadline() });
            ctx.log.info("hello");
            if (task.id === "parent") await ctx.client.submitTask("child");
            return "done";
          },
        }),
      }),
    );
    await c.start();
    await broker.client().submitTask("parent");
    await waitFor("child ran too", () => seen.length === 2);
    expect(seen.map((s) => s.node)).toEqual(["n1", "n1"]);
    expect(seen[1]!.token).toBeGreaterThan(seen[0]!.token);
    expect(seen[0]!.deadline).toBe(Infinity);
    expect(log.text("info")).toContain("[task parent] hello");
  });

  test("throwing event listeners and a throwing canClaim are logged; claiming carries on", async () => {
    const broker = new MemoryBroker();
    const log = captureLog();
    let calls = 0;
    const balancer: Balancer = {
      canClaim() {
        if (calls++ === 0) throw new Error("flaky balancer");
        return { claim: true };
      },
      balance: () => [],
    };
    const c = track(consumerOn(broker, "n1", { handler: { run: async () => "done" }, balancer, log }));
    c.on("claimed", () => {
      throw new Error("listener bug");
    });
    const ev = recordEvents(c);
    await c.start();
    await broker.client().submitTask("t");
    await waitFor("t done after the retry", () => ev.ids("done").includes("t"), { timeout: 10_000 });
    expect(log.text("error")).toContain("flaky balancer");
    expect(log.text("error")).toContain(`"claimed" event listener threw`);
  });
});
