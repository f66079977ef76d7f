/**
 * The memory coordinator: real claim semantics (exactly one wins, release re-announces, done
 * and delete are final, fencing tokens increase), node commands (T14 adapted), and consumers
 * on it (T15, T16: Go's "embedded" tests, now on a broker with real semantics).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { freeze, stopTask } from "../../src/command.ts";
import type { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker, type BrokerSnapshot } from "../../src/coordinators/memory/broker.ts";
import { NodeNameTakenError, TaskExistsError } from "../../src/errors.ts";
import { getLogger, setLogger, silentLogger } from "../../src/log.ts";
import type { CoordinatorContext, NodeCommand, StopReason, Task } from "../../src/types.ts";
import { waitFor } from "../support/wait.ts";
import { blockingHandler, consumerOn } from "./helpers.ts";

/** A coordinator context that records what the broker pushes to one node. */
function probe(node: string) {
  const announced: string[] = [];
  const withdrawn: string[] = [];
  const commands: NodeCommand[] = [];
  const lost: [string, StopReason][] = [];
  const ctx: CoordinatorContext = {
    node,
    log: { debug() {}, info() {}, warn() {}, error() {} },
    announce: (t: Task) => announced.push(t.id),
    withdraw: (id) => withdrawn.push(id),
    command: (c) => commands.push(c),
    lost: (id, reason) => lost.push([id, reason]),
    suspend: async () => {},
    resume: () => {},
  };
  return { ctx, announced, withdrawn, commands, lost };
}

const live: Consumer[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((c) => c.shutdown({ timeout: 1000 }).then(() => c.shutdown())));
});

describe("MemoryBroker semantics", () => {
  test("exactly one of several racing claims wins; the winner gets a token; the task is withdrawn from the others", async () => {
    const broker = new MemoryBroker();
    const nodes = ["a", "b", "c"].map((n) => ({ coord: broker.coordinator(n), p: probe(n) }));
    for (const { coord, p } of nodes) await coord.init(p.ctx);
    await broker.client().submitTask("t");
    for (const { p } of nodes) expect(p.announced).toEqual(["t"]);
    const task: Task = { id: "t", props: {} };
    const results = await Promise.all(nodes.map(({ coord }) => coord.claim(task)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.findIndex(Boolean);
    expect(results[winner]!.token).toBeGreaterThan(0);
    nodes.forEach(({ p }, i) => expect(p.withdrawn).toEqual(i === winner ? [] : ["t"]));
    expect(await broker.client().tasks()).toEqual([
      { id: "t", props: {}, owner: ["a", "b", "c"][winner], token: results[winner]!.token },
    ]);
  });

  test("release re-announces to every live node; only the owner can release or finish; done deletes for good (T45)", async () => {
    const broker = new MemoryBroker();
    const a = broker.coordinator("a");
    const b = broker.coordinator("b");
    const pa = probe("a");
    const pb = probe("b");
    await a.init(pa.ctx);
    await b.init(pb.ctx);
    const task: Task = { id: "t", props: {} };
    expect(await a.claim(task)).toBeUndefined(); // T45: claiming a task that does not exist fails
    await broker.client().submitTask("t");
    const first = await a.claim(task);
    expect(first).toBeDefined();
    await b.release(task); // not the owner: no effect
    await b.done(task);
    expect((await broker.client().tasks())[0]!.owner).toBe("a");
    await a.release(task);
    expect(pa.announced).toEqual(["t", "t"]);
    expect(pb.announced).toEqual(["t", "t"]);
    const second = await b.claim(task);
    expect(second!.token).toBeGreaterThan(first!.token); // fencing tokens strictly increase
    await b.done(task);
    expect(await broker.client().tasks()).toEqual([]);
    expect(await a.claim(task)).toBeUndefined(); // T45: no resurrection after done
    await broker.client().submitTask("t"); // the id is free again
    expect((await a.claim(task))!.token).toBeGreaterThan(second!.token);
  });

  test("submitting an existing id fails with TaskExistsError (T40); bad ids and props are rejected clearly", async () => {
    const client = new MemoryBroker().client();
    await client.submitTask("t", { a: 1 });
    await expect(client.submitTask("t")).rejects.toBeInstanceOf(TaskExistsError);
    await expect(client.submitTask("")).rejects.toThrow(/task id must be a non-empty string/);
    await expect(client.submitTask("arr", [] as never)).rejects.toThrow(
      /props of task "arr" must be a JSON object, got an array/,
    );
    await expect(client.submitTask("big", { n: 1n } as never)).rejects.toThrow(
      /props of task "big" must be JSON-serialisable/,
    );
  });

  test("props are copied: the caller cannot change a submitted task", async () => {
    const client = new MemoryBroker().client();
    const props = { list: [1, 2] };
    await client.submitTask("t", props);
    props.list.push(3);
    expect((await client.tasks())[0]!.props).toEqual({ list: [1, 2] });
  });

  test("deleting a running task tells its owner (lost: deleted); deleting an unclaimed one withdraws it; absent → false", async () => {
    const broker = new MemoryBroker();
    const a = broker.coordinator("a");
    const pa = probe("a");
    await a.init(pa.ctx);
    await broker.client().submitTask("run");
    await broker.client().submitTask("idle");
    await a.claim({ id: "run", props: {} });
    expect(await broker.client().deleteTask("run")).toBe(true);
    expect(pa.lost).toEqual([["run", "deleted"]]);
    expect(await broker.client().deleteTask("idle")).toBe(true);
    expect(pa.withdrawn).toEqual(["idle"]);
    expect(await broker.client().deleteTask("idle")).toBe(false);
    expect(await a.claim({ id: "idle", props: {} })).toBeUndefined();
    expect(broker.coordinator("x").cluster.unclaimedCount()).toBe(0);
  });

  test("node names are unique while live (NodeNameTakenError); nodes() lists live nodes; close frees the name and the claims", async () => {
    const broker = new MemoryBroker();
    const a = broker.coordinator("a");
    await a.init(probe("a").ctx);
    await expect(broker.coordinator("a").init(probe("a").ctx)).rejects.toBeInstanceOf(NodeNameTakenError);
    const b = broker.coordinator("b");
    const pb = probe("b");
    await b.init(pb.ctx);
    expect(await broker.client().nodes()).toEqual(["a", "b"]);
    await broker.client().submitTask("t");
    await a.claim({ id: "t", props: {} });
    expect(a.cluster.nodeTaskCounts()).toEqual(
      new Map([
        ["a", 1],
        ["b", 0],
      ]),
    );
    expect(a.cluster.unclaimedCount()).toBe(0);
    await a.close();
    expect(await broker.client().nodes()).toEqual(["b"]);
    expect(pb.announced).toEqual(["t", "t"]); // the dead node's claim was freed and announced
    expect(b.cluster.nodeTaskCounts()).toEqual(new Map([["b", 0]]));
    expect(b.cluster.unclaimedCount()).toBe(1);
    await a.release({ id: "t", props: {} }); // safe after close
    await a.done({ id: "t", props: {} });
    expect(await a.claim({ id: "t", props: {} })).toBeUndefined(); // closed
    expect(a.claimDeadline()).toBe(Infinity);
    const again = broker.coordinator("a");
    await again.init(probe("a").ctx); // the name is free again
  });

  test("T14 adapted: node commands reach only their node, in submission order; a node not yet live gets them when it joins", async () => {
    const broker = new MemoryBroker();
    const a = broker.coordinator("a");
    const b = broker.coordinator("b");
    const pa = probe("a");
    const pb = probe("b");
    await a.init(pa.ctx);
    const cmds = Array.from({ length: 20 }, (_, i) => stopTask(`t${i}`));
    for (const c of cmds) await broker.client().submitCommand("a", c);
    await broker.client().submitCommand("b", freeze());
    await broker.client().submitCommand("b", stopTask("x"));
    expect(pa.commands).toEqual(cmds);
    await b.init(pb.ctx);
    expect(pb.commands).toEqual([freeze(), stopTask("x")]);
    await expect(broker.client().submitCommand("a", { command: "" })).rejects.toThrow(/non-empty string "command"/);
    await expect(broker.client().submitCommand("a", { command: "x", parameters: [] as never })).rejects.toThrow(
      /"parameters" must be an object/,
    );
  });

  test("a node callback that throws breaks neither the broker nor the caller", async () => {
    const broker = new MemoryBroker();
    const bad = broker.coordinator("bad");
    const p = probe("bad");
    await bad.init({
      ...p.ctx,
      announce: () => {
        throw new Error("consumer bug");
      },
    });
    const good = broker.coordinator("good");
    const pg = probe("good");
    await good.init(pg.ctx);
    const errors: string[] = [];
    const previous = getLogger();
    setLogger({ ...silentLogger, error: (m: string) => errors.push(m) });
    try {
      await broker.client().submitTask("t");
    } finally {
      setLogger(previous);
    }
    expect(pg.announced).toEqual(["t"]);
    expect(errors[0]).toContain("a node callback threw: Error: consumer bug");
  });

  test("snapshot round-trips tasks and the token counter through JSON; claims are not persisted; onChange fires on submit/delete/done", async () => {
    let changes = 0;
    const broker = new MemoryBroker({ onChange: () => changes++ });
    const a = broker.coordinator("a");
    await a.init(probe("a").ctx);
    await broker.client().submitTask("b-task", { x: [1, { y: "z" }] });
    await broker.client().submitTask("a-task");
    await broker.client().submitTask("gone");
    const tok = (await a.claim({ id: "a-task", props: {} }))!.token;
    await a.claim({ id: "gone", props: {} });
    await a.done({ id: "gone", props: {} });
    await broker.client().deleteTask("b-task");
    await broker.client().submitTask("b-task", { x: [1, { y: "z" }] });
    expect(changes).toBe(6);
    const snap = JSON.parse(JSON.stringify(broker.snapshot())) as BrokerSnapshot;
    expect(snap).toEqual({
      version: 1,
      lastToken: 2,
      tasks: [
        { id: "a-task", props: {} },
        { id: "b-task", props: { x: [1, { y: "z" }] } },
      ],
    });
    const restored = new MemoryBroker({ snapshot: snap });
    expect(await restored.client().tasks()).toEqual([
      { id: "a-task", props: {} },
      { id: "b-task", props: { x: [1, { y: "z" }] } },
    ]);
    const r = restored.coordinator("a");
    await r.init(probe("a").ctx);
    expect((await r.claim({ id: "a-task", props: {} }))!.token).toBeGreaterThan(tok);
  });

  test("a malformed snapshot is rejected with a message naming the problem", () => {
    expect(() => new MemoryBroker({ snapshot: {} as never })).toThrow(/expected an object with a "tasks" array/);
    expect(() => new MemoryBroker({ snapshot: { version: 2, lastToken: 0, tasks: [] } as never })).toThrow(
      /unsupported version 2/,
    );
    expect(() => new MemoryBroker({ snapshot: { version: 1, lastToken: 0, tasks: [{ id: "", props: {} }] } })).toThrow(
      /tasks\[0\]\.id must be a non-empty string/,
    );
    expect(
      () =>
        new MemoryBroker({
          snapshot: {
            version: 1,
            lastToken: 0,
            tasks: [
              { id: "a", props: {} },
              { id: "a", props: {} },
            ],
          },
        }),
    ).toThrow(/"a" appears twice/);
    expect(() => new MemoryBroker({ snapshot: { version: 1, lastToken: -1, tasks: [] } })).toThrow(
      /"lastToken" must be a non-negative integer/,
    );
  });
});

describe("consumers on the memory coordinator (T15, T16)", () => {
  test("T15: 4 tasks submitted through the client all run, exactly once, across 2 consumers", async () => {
    const broker = new MemoryBroker();
    const runs: string[] = [];
    for (const n of ["n1", "n2"]) {
      live.push(consumerOn(broker, n, { handler: { run: async (t) => (runs.push(t.id), "done") } }));
    }
    await Promise.all(live.map((c) => c.start()));
    for (let i = 0; i < 4; i++) await broker.client().submitTask(`t${i}`);
    await waitFor("4 runs", () => runs.length === 4);
    await Promise.all(live.map((c) => c.shutdown()));
    expect(runs.sort()).toEqual(["t0", "t1", "t2", "t3"]);
    expect(await broker.client().tasks()).toEqual([]);
  });

  test("T16: 4 blocking tasks start; shutdown makes each observe its stop and leaves them unowned for the next node", async () => {
    const broker = new MemoryBroker();
    const h = blockingHandler();
    const c = consumerOn(broker, "n1", { handler: h.handler });
    live.push(c);
    await c.start();
    for (let i = 0; i < 4; i++) await broker.client().submitTask(`t${i}`);
    await waitFor("4 running", () => h.active.size === 4);
    expect(await c.shutdown({ timeout: 5000 })).toEqual({ clean: true, stuck: [] });
    expect(h.started.every((s) => s.ctx.signal.aborted)).toBe(true);
    const tasks = await broker.client().tasks();
    expect(tasks.map((t) => t.owner)).toEqual([undefined, undefined, undefined, undefined]);
    const h2 = blockingHandler();
    const c2 = consumerOn(broker, "n2", { handler: h2.handler });
    live.push(c2);
    await c2.start();
    await waitFor("all 4 picked up by the next node", () => h2.active.size === 4);
  });

  test("3 consumers share 300 tasks evenly without a rebalance (claim-time fairness)", async () => {
    const broker = new MemoryBroker();
    const handlers = ["a", "b", "c"].map(() => blockingHandler());
    handlers.forEach((h, i) => live.push(consumerOn(broker, `n${i}`, { handler: h.handler })));
    await Promise.all(live.map((c) => c.start()));
    for (let i = 0; i < 300; i++) await broker.client().submitTask(`t${i}`);
    await waitFor("all 300 running", () => handlers.reduce((n, h) => n + h.active.size, 0) === 300);
    for (const h of handlers) {
      expect(h.active.size).toBeGreaterThanOrEqual(90);
      expect(h.active.size).toBeLessThanOrEqual(110);
    }
  });
});
