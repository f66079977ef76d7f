/**
 * Elasticity on real etcd: a node that joins, a node process that is SIGKILLed and started
 * again, a graceful handoff, and a node in Go's format (its marker and owner keys written
 * straight into etcd, claiming as a slower Go node would). Every scenario checks the spread
 * (±20 % of the fair share), that no more tasks moved than the excess plus a small allowance,
 * and that no task ran on two nodes at once (every start and stop is recorded per task).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Etcd3 } from "etcd3";
import { allowanceFor, FairBalancer } from "../../src/balancers/fair.ts";
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { encodeMetadata, encodeOwner, Keys } from "../../src/coordinators/etcd/keys.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import type { Handler, HandlerResult } from "../../src/types.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { sleep, waitFor } from "../support/wait.ts";
import { NodeNameTakenError } from "../../src/errors.ts";
import { CapturingLogger, Cleanup, RecordingContext, makeClient, rawClient, uniqueNamespace } from "./helpers.ts";

const TTL = 3;
const FAIR = { claimDefer: [20, 60] as [number, number], claimDeferLimit: 3000 };
const REBALANCE = { debounce: 100, jitter: 200, window: 400, steps: 4, driftEvery: 1000 };

let etcd: EtcdServer;
const cleanup = new Cleanup();
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
});

/** Every handler start and stop, per task, from in-process nodes and child processes alike. */
class Ledger {
  private readonly active = new Map<string, { node: string; token: number }[]>();
  readonly starts: { id: string; node: string; at: number }[] = [];
  readonly overlaps: string[] = [];

  start(id: string, node: string, token: number): void {
    const runs = this.active.get(id) ?? [];
    if (runs.length > 0)
      this.overlaps.push(
        `${id} started on ${node} (token ${token}) while running on ${runs.map((r) => `${r.node} (token ${r.token})`).join(", ")}`,
      );
    runs.push({ node, token });
    this.active.set(id, runs);
    this.starts.push({ id, node, at: Date.now() });
  }

  stop(id: string, node: string, token: number): void {
    const runs = (this.active.get(id) ?? []).filter((r) => !(r.node === node && r.token === token));
    if (runs.length === 0) this.active.delete(id);
    else this.active.set(id, runs);
  }

  /** The node's process died: none of its handlers runs any more. */
  died(node: string): void {
    for (const [id, runs] of [...this.active]) {
      const rest = runs.filter((r) => r.node !== node);
      if (rest.length === 0) this.active.delete(id);
      else this.active.set(id, rest);
    }
  }

  on(node: string): number {
    let n = 0;
    for (const runs of this.active.values()) if (runs.some((r) => r.node === node)) n++;
    return n;
  }

  get running(): number {
    return this.active.size;
  }

  movesSince(at: number): number {
    return this.starts.filter((s) => s.at >= at).length;
  }

  handler(node: string): Handler {
    return {
      run: (task, ctx) => {
        this.start(task.id, node, ctx.token);
        return new Promise<HandlerResult>((resolve) => {
          const stop = (): void => {
            this.stop(task.id, node, ctx.token);
            resolve("release");
          };
          if (ctx.signal.aborted) stop();
          else ctx.signal.addEventListener("abort", stop, { once: true });
        });
      },
    };
  }
}

class EtcdCluster {
  readonly ns: string;
  readonly ledger = new Ledger();
  readonly live = new Set<string>();
  private readonly consumers = new Map<string, { consumer: Consumer; log: CapturingLogger }>();
  private readonly children = new Map<string, ChildProcess>();

  constructor(label: string) {
    this.ns = uniqueNamespace(label);
  }

  async start(name: string): Promise<void> {
    const log = new CapturingLogger();
    const coordinator = new EtcdCoordinator(
      { endpoints: [etcd.endpoint], namespace: this.ns, node: name, leaseTtl: TTL },
      { log },
    );
    const consumer = new Consumer({
      coordinator,
      node: name,
      handler: this.ledger.handler(name),
      balancer: new FairBalancer(FAIR),
      balanceEvery: Infinity,
      rebalance: REBALANCE,
      log,
    });
    cleanup.add(coordinator, (c) => c.close());
    cleanup.add(consumer, (c) => c.shutdown({ timeout: 5000 }));
    this.consumers.set(name, { consumer, log });
    await consumer.start();
    this.live.add(name);
  }

  /** Graceful shutdown, as on SIGTERM: every task released. */
  async stop(name: string): Promise<void> {
    this.live.delete(name);
    await this.consumers.get(name)!.consumer.shutdown({ timeout: 5000 });
  }

  /** A node in its own process; retried while its name is still taken by its previous lease. */
  async spawn(name: string): Promise<void> {
    const fixture = join(import.meta.dir, "fixtures", "elastic-node.ts");
    for (let attempt = 0; attempt < 50; attempt++) {
      const child = spawn(
        process.execPath,
        [fixture, etcd.endpoint, this.ns, name, String(TTL), JSON.stringify({ fair: FAIR, rebalance: REBALANCE })],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      cleanup.add(child, (c) => {
        if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      });
      const outcome = await new Promise<"ready" | "taken" | "failed">((resolve) => {
        const lines = createInterface({ input: child.stdout! });
        lines.on("line", (line) => {
          const [what, id, token] = line.split(" ");
          if (what === "ready") resolve("ready");
          else if (what === "start") this.ledger.start(id!, name, Number(token));
          else if (what === "stop") this.ledger.stop(id!, name, Number(token));
        });
        child.on("exit", (code) => resolve(code === 3 ? "taken" : "failed"));
      });
      if (outcome === "ready") {
        this.children.set(name, child);
        this.live.add(name);
        return;
      }
      if (outcome === "failed") throw new Error(`node process ${name} failed to start`);
      await sleep(200);
    }
    throw new Error(`node name ${name} stayed taken`);
  }

  /** SIGKILL: the process and its handlers die at once; its claims last until its lease expires. */
  async kill(name: string): Promise<void> {
    const child = this.children.get(name)!;
    this.children.delete(name);
    this.live.delete(name);
    const exited = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGKILL");
    this.ledger.died(name);
    await exited;
  }

  async submit(n: number): Promise<void> {
    const client = makeClient(etcd, this.ns, cleanup);
    const ids = Array.from({ length: n }, (_, i) => `t${String(i).padStart(4, "0")}`);
    for (let i = 0; i < ids.length; i += 25) await Promise.all(ids.slice(i, i + 25).map((id) => client.submitTask(id)));
  }

  counts(nodes: Iterable<string> = this.live): number[] {
    return [...nodes].map((n) => this.ledger.on(n));
  }

  /** Every live node within ±20 % of the fair share, and all `total` tasks running. */
  balanced(total: number, nodes: Iterable<string> = this.live): boolean {
    const counts = this.counts(nodes);
    const share = total / counts.length;
    return this.ledger.running === total && counts.every((c) => Math.abs(c - share) <= 0.2 * share);
  }

  /** Balanced and no handler started for `quiet` ms: earlier rebalances are over. */
  async settled(total: number, quiet = 1000): Promise<void> {
    await waitFor(
      "the cluster to settle",
      () => this.balanced(total) && Date.now() - Math.max(0, ...this.ledger.starts.map((s) => s.at)) >= quiet,
      { timeout: 20_000, interval: 50 },
    );
  }

  logLines(): string[] {
    return [...this.consumers.values()].flatMap((c) => c.log.lines.map((l) => l.message));
  }
}

function minimumMoves(counts: number[], share: number): number {
  return counts.reduce((sum, c) => sum + Math.max(0, c - Math.ceil(share)), 0);
}

const TASKS = 320;

test("join, then SIGKILL and return of a node process: each gets its share; only the excess moves", async () => {
  const c = new EtcdCluster("elastic-kill");
  for (const n of ["n1", "n2", "n3"]) await c.start(n);
  await c.submit(TASKS);
  await waitFor("320 tasks spread over 3 nodes", () => c.balanced(TASKS), { timeout: 20_000 });
  await c.settled(TASKS);

  // Join: a fresh node process.
  let before = c.counts();
  let mark = Date.now();
  await c.spawn("p1");
  await waitFor("p1 to get its share (±20 %)", () => c.balanced(TASKS), { timeout: 20_000 });
  const share = TASKS / 4;
  expect(c.ledger.movesSince(mark)).toBeLessThanOrEqual(minimumMoves(before, share) + 4 * allowanceFor(share, 0.05));
  await waitFor("a log line naming the join", () =>
    c.logLines().some((l) => l.startsWith("rebalance (join of node p1)")),
  );

  // kill -9: the survivors take over once its lease expires.
  await c.kill("p1");
  await waitFor("the survivors to run every task", () => c.balanced(TASKS), { timeout: 20_000 });
  await c.settled(TASKS);

  // Return under the same name.
  before = c.counts(["n1", "n2", "n3"]);
  mark = Date.now();
  await c.spawn("p1");
  await waitFor("p1 to get its share back (±20 %)", () => c.balanced(TASKS), { timeout: 20_000 });
  expect(c.ledger.movesSince(mark)).toBeLessThanOrEqual(minimumMoves(before, share) + 4 * allowanceFor(share, 0.05));
  await waitFor("a log line naming the return", () =>
    c.logLines().some((l) => l.startsWith("rebalance (return of node p1)")),
  );
  expect(c.ledger.overlaps).toEqual([]);
}, 90_000);

test("SIGTERM handoff: a leaving node's tasks spread evenly over the others, nothing else moves", async () => {
  const c = new EtcdCluster("elastic-term");
  for (const n of ["n1", "n2", "n3", "n4"]) await c.start(n);
  await c.submit(TASKS);
  await waitFor("320 tasks spread over 4 nodes", () => c.balanced(TASKS), { timeout: 20_000 });
  await c.settled(TASKS);
  const mark = Date.now();
  await c.stop("n1");
  await waitFor("the other three to share n1's tasks (±20 %)", () => c.balanced(TASKS), { timeout: 20_000 });
  expect(c.ledger.movesSince(mark)).toBeLessThanOrEqual(TASKS / 4 + 3 * allowanceFor(TASKS / 3, 0.05));
  expect(c.ledger.overlaps).toEqual([]);
}, 60_000);

/**
 * A Go Metafora node, as etcd sees it: its marker `nodes/M/_metafora` with Go's metadata and
 * owner keys `{"node":"M"}`, all on its own lease. It claims one unclaimed task every
 * `claimEvery` ms (a Go node is slower than ours at winning claim races).
 */
class ForeignGoNode {
  private stopped = false;
  private leaseId = "";
  readonly claimed = new Set<string>();

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    readonly name: string,
  ) {}

  async register(): Promise<void> {
    const lease = this.client.lease(10, { autoKeepAlive: true });
    this.leaseId = await lease.grant();
    cleanup.add(lease, (l) => l.revoke().catch(() => undefined));
    await lease.put(this.keys.node(this.name)).value(encodeMetadata("gohost", this.name)).exec();
  }

  /** Claim like Go's transaction: owner absent and task present → owner on the lease. */
  async claim(id: string): Promise<boolean> {
    const owner = Buffer.from(this.keys.owner(id));
    const res = await this.client.kv.txn({
      compare: [
        { key: owner, target: "Version", result: "Equal", version: 0 },
        { key: Buffer.from(this.keys.task(id)), target: "Version", result: "Greater", version: 0 },
      ],
      success: [{ request_put: { key: owner, value: Buffer.from(encodeOwner(this.name)), lease: this.leaseId } }],
    });
    if (res.succeeded) this.claimed.add(id);
    return res.succeeded;
  }

  /** Claim unclaimed tasks, one per `claimEvery` ms, until stop() or the deadline. */
  async claimLoop(claimEvery: number, deadline: number): Promise<void> {
    while (!this.stopped && Date.now() < deadline) {
      const owned = new Set<string>();
      const tasks = new Set<string>();
      for (const key of await this.client.getAll().prefix(this.keys.tasksPrefix).keys()) {
        const rest = key.slice(this.keys.tasksPrefix.length);
        if (rest.endsWith("/owner")) owned.add(rest.slice(0, -"/owner".length));
        else if (!rest.includes("/") && rest !== "_metafora") tasks.add(rest);
      }
      const free = [...tasks].find((id) => !owned.has(id));
      if (free !== undefined) await this.claim(free);
      await sleep(free !== undefined ? claimEvery : 50);
    }
  }

  stop(): void {
    this.stopped = true;
  }
}

test("a node registered in Go's format counts in the share: ours hand it tasks and defer claims to it", async () => {
  const c = new EtcdCluster("elastic-go");
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(c.ns);
  const total = 120;
  await c.start("n1");
  await c.submit(total);
  await waitFor("n1 to run all 120", () => c.ledger.on("n1") === total, { timeout: 20_000 });

  // A Go node appears with nothing: n1 sees a join and releases down to the share, paced; the
  // Go node, much slower at claiming, still gets them because n1 defers to it.
  const go = new ForeignGoNode(raw, keys, "go1");
  await go.register();
  const loop = go.claimLoop(15, Date.now() + 45_000);
  try {
    await waitFor(
      "go1 and n1 within ±20 % of 60",
      () => {
        const ours = c.ledger.on("n1");
        const theirs = go.claimed.size;
        return ours + theirs === total && Math.abs(ours - 60) <= 12 && Math.abs(theirs - 60) <= 12;
      },
      { timeout: 20_000 },
    );
    expect(c.logLines().some((l) => l.startsWith("rebalance (join of node go1)"))).toBe(true);

    // Claim time: 40 new tasks make the fair share 80 each. n1 claims much faster than go1,
    // yet it stops at its share and defers the rest to go1 while go1 keeps claiming.
    const client = makeClient(etcd, c.ns, cleanup);
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.submitTask(`new-${i}`)));
    await waitFor(
      "n1 and go1 within ±20 % of 80",
      () => {
        const ours = c.ledger.on("n1");
        const theirs = go.claimed.size;
        return ours + theirs === total + 40 && Math.abs(ours - 80) <= 16 && Math.abs(theirs - 80) <= 16;
      },
      { timeout: 20_000 },
    );
  } finally {
    go.stop();
    await loop;
  }
  expect(c.ledger.overlaps).toEqual([]);
}, 60_000);

test("a node shutting down is dropped from the others' shares and claim order before it hands anything back", async () => {
  const ns = uniqueNamespace("elastic-leaving");
  const log = new CapturingLogger();
  const make = (name: string) =>
    new EtcdCoordinator({ endpoints: [etcd.endpoint], namespace: ns, node: name, leaseTtl: TTL }, { log });
  // n1's handlers take a while to stop, so its shutdown has a window in which it still runs
  // every task: the others must already count it out then.
  const running = new Set<string>();
  const slowStop: Handler = {
    run: (task, ctx) =>
      new Promise<HandlerResult>((resolve) => {
        running.add(task.id);
        ctx.signal.addEventListener(
          "abort",
          () =>
            setTimeout(() => {
              running.delete(task.id);
              resolve("release");
            }, 1500),
          { once: true },
        );
      }),
  };
  const c1 = make("n1");
  const n1 = new Consumer({ coordinator: c1, node: "n1", handler: slowStop, balanceEvery: Infinity, log });
  cleanup.add(n1, (c) => c.shutdown({ timeout: 5000 }));
  await n1.start();
  await makeClient(etcd, ns, cleanup).submitTasks(Array.from({ length: 20 }, (_, i) => ({ id: `t${i}` })));
  await waitFor("n1 to run all 20 tasks", () => running.size === 20);

  const c2 = make("n2");
  cleanup.add(c2, (c) => c.close());
  const ledger = new Ledger();
  const n2 = new Consumer({
    coordinator: c2,
    node: "n2",
    handler: ledger.handler("n2"),
    balanceEvery: Infinity,
    rebalance: false,
    log,
  });
  cleanup.add(n2, (c) => c.shutdown({ timeout: 5000 }));
  await n2.start();
  await waitFor("n2 to see n1 with its 20 tasks", () => c2.cluster.nodeTaskCounts().get("n1") === 20);
  expect(c2.cluster.liveNodes()).toEqual(["n1", "n2"]);

  const stopped = n1.shutdown({ timeout: 5000 });
  await waitFor("n2 to count n1 out", () => !c2.cluster.liveNodes().includes("n1"), { timeout: 1000 });
  // Counted out while n1 still runs (and owns) every one of its tasks.
  expect(running.size).toBe(20);
  expect([...c2.cluster.nodeTaskCounts().keys()]).toEqual(["n2"]);
  // Its tasks count as about to come free: n2's fair share is all 20, so it will not defer them.
  expect(c2.cluster.unclaimedCount()).toBe(20);
  // Its name stays taken until its lease ends: a second n1 cannot register meanwhile.
  const twin = make("n1");
  await expect(twin.init(new RecordingContext("n1"))).rejects.toBeInstanceOf(NodeNameTakenError);
  await twin.close();

  expect((await stopped).clean).toBe(true);
  // With every handler stopped, the last release ended the lease instead: one request for all.
  expect(log.lines.map((l) => l.message)).toContainEqual(expect.stringMatching(/^handed off by revoking lease/));
  await waitFor("n2 to run all 20 tasks", () => ledger.on("n2") === 20, { timeout: 10_000 });
  expect(ledger.overlaps).toEqual([]);
}, 30_000);

test("a joining node is left out of the others' shares until it has listed the tasks", async () => {
  const ns = uniqueNamespace("elastic-joining");
  const log = new CapturingLogger();
  const c1 = new EtcdCoordinator({ endpoints: [etcd.endpoint], namespace: ns, node: "n1", leaseTtl: TTL }, { log });
  cleanup.add(c1, (c) => c.close());
  await c1.init(new RecordingContext("n1"));
  const raw = rawClient(etcd, cleanup);
  const keys = new Keys(ns);
  let seenWhileListing: string[] | undefined;
  let markerWhileListing = null as string | null;
  const c2 = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace: ns, node: "n2", leaseTtl: TTL },
    {
      log,
      testHooks: {
        // Registered (its marker is in etcd) but still listing: n1 must not count it yet.
        afterTaskList: async () => {
          if (seenWhileListing) return;
          markerWhileListing = await raw.get(keys.node("n2")).string();
          await waitFor("n1 to see n2 registered, standing by", () => c1.cluster.standingBy().includes("n2"));
          seenWhileListing = c1.cluster.liveNodes();
        },
      },
    },
  );
  cleanup.add(c2, (c) => c.close());
  await c2.init(new RecordingContext("n2"));
  expect(markerWhileListing).toContain('"joining":true');
  expect(seenWhileListing).toEqual(["n1"]);
  // Listed: the marker is Go's plain metadata again, and n1 counts n2.
  expect(Object.keys(JSON.parse((await raw.get(keys.node("n2")).string())!) as object)).toEqual([
    "host",
    "created",
    "node",
  ]);
  await waitFor("n1 to count n2", () => c1.cluster.liveNodes().includes("n2"));
  expect(c1.cluster.standingBy()).toEqual([]);
}, 30_000);
