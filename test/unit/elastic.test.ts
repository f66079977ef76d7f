/**
 * Elasticity on the memory coordinator: a node that joins, a node that stops abruptly and
 * returns, and a graceful handoff, with 4 nodes and 320 tasks. Each scenario checks that every
 * node ends within ±20 % of the fair share, that no more tasks moved than the excess plus a
 * small allowance (no storm), and that no task ever ran on two nodes at once.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { allowanceFor, FairBalancer } from "../../src/balancers/fair.ts";
import { Consumer } from "../../src/consumer/consumer.ts";
import { MemoryBroker } from "../../src/coordinators/memory/broker.ts";
import type { Coordinator, Task } from "../../src/types.ts";
import { RunLedger } from "../etcd/cluster.ts";
import { waitFor } from "../support/wait.ts";
import { captureLog } from "./helpers.ts";

const TASKS = 320;
/** Short pacing for tests; the defaults are documented in config/README.md. */
const REBALANCE = { debounce: 30, jitter: 60, window: 200, steps: 4, driftEvery: 400 };

/** A memory coordinator whose process can "die": releases and dones stop reaching the broker. */
function killable(inner: Coordinator): Coordinator & { kill(): void } {
  let dead = false;
  return {
    get name() {
      return inner.name;
    },
    get cluster() {
      return inner.cluster;
    },
    get client() {
      return inner.client;
    },
    init: (ctx) => inner.init(ctx),
    claim: (t: Task) => inner.claim(t),
    release: async (t: Task) => (dead ? undefined : inner.release(t)),
    done: async (t: Task) => (dead ? undefined : inner.done(t)),
    claimDeadline: () => inner.claimDeadline(),
    close: () => inner.close(),
    kill() {
      dead = true;
    },
  };
}

class MemoryCluster {
  readonly broker = new MemoryBroker();
  readonly ledger = new RunLedger();
  readonly nodes = new Map<
    string,
    { consumer: Consumer; coordinator: ReturnType<typeof killable>; log: ReturnType<typeof captureLog> }
  >();

  async start(name: string): Promise<void> {
    const coordinator = killable(this.broker.coordinator(name));
    const log = captureLog();
    const consumer = new Consumer({
      coordinator,
      node: name,
      handler: this.ledger.handler(name),
      balancer: new FairBalancer({ claimDefer: [10, 40], claimDeferLimit: 3000 }),
      balanceEvery: Infinity,
      rebalance: REBALANCE,
      log,
    });
    this.nodes.set(name, { consumer, coordinator, log });
    await consumer.start();
  }

  /** Graceful: SIGTERM-like shutdown, every task released. */
  async stop(name: string): Promise<void> {
    const node = this.nodes.get(name)!;
    this.nodes.delete(name);
    await node.consumer.shutdown({ timeout: 5000 });
  }

  /**
   * Abrupt: the node's handlers die with it and nothing is released; its claims end only when
   * the broker forgets the node (as a lease expires), all at once.
   */
  async kill(name: string): Promise<void> {
    const node = this.nodes.get(name)!;
    this.nodes.delete(name);
    node.coordinator.kill();
    await node.consumer.shutdown({ timeout: 5000 });
  }

  async submit(n: number): Promise<void> {
    const client = this.broker.client();
    for (let i = 0; i < n; i++) await client.submitTask(`t${String(i).padStart(4, "0")}`);
  }

  counts(): Map<string, number> {
    return new Map([...this.nodes.keys()].map((n) => [n, this.ledger.runningOn(n).length]));
  }

  /** Every live node within ±20 % of the fair share, and every task running once. */
  balanced(total = TASKS): boolean {
    const share = total / this.nodes.size;
    if (this.ledger.runningCount() !== total) return false;
    return [...this.counts().values()].every((c) => Math.abs(c - share) <= 0.2 * share);
  }

  /** Balanced and no task started for `quiet` ms: rebalances of the set-up are over. */
  async settled(quiet = 500): Promise<void> {
    await waitFor(
      "the cluster to settle",
      () => this.balanced() && Date.now() - Math.max(0, ...this.ledger.runs.map((r) => r.started)) >= quiet,
      { timeout: 15_000, interval: 25 },
    );
  }

  logLines(): string[] {
    return [...this.nodes.values()].flatMap((n) => n.log.lines.map((l) => l.message));
  }

  describe(): string {
    return JSON.stringify(Object.fromEntries(this.counts()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((n) => this.stop(n)));
  }
}

/** The fewest moves that bring every node to ceil(share): Σ max(0, count − ceil(share)). */
function minimumMoves(counts: Iterable<number>, share: number): number {
  let n = 0;
  for (const c of counts) n += Math.max(0, c - Math.ceil(share));
  return n;
}

let cluster: MemoryCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function balancedCluster(names: string[]): Promise<MemoryCluster> {
  const c = new MemoryCluster();
  for (const n of names) await c.start(n);
  await c.submit(TASKS);
  await waitFor(`${TASKS} tasks spread over ${names.length} nodes`, () => c.balanced() || undefined, {
    timeout: 15_000,
  });
  await c.settled();
  return c;
}

describe("elastic rebalancing (memory)", () => {
  test("a node that joins gets its share within seconds; only the excess moves, nothing runs twice", async () => {
    cluster = await balancedCluster(["n1", "n2", "n3"]);
    const before = [...cluster.counts().values()];
    const mark = Date.now();
    await cluster.start("n4");
    await waitFor("n4 to get its share (±20 %)", () => cluster!.balanced() || undefined, { timeout: 15_000 });
    const moved = cluster.ledger.runs.filter((r) => r.started >= mark).length;
    const share = TASKS / 4;
    const min = minimumMoves(before, share);
    // Paced rebalances may overshoot by at most an allowance per node, never storm.
    expect(moved).toBeGreaterThanOrEqual(Math.floor(share * 0.8));
    expect(moved).toBeLessThanOrEqual(min + 4 * allowanceFor(share, 0.05));
    expect(cluster.ledger.overlaps).toEqual([]);
    // One log line per rebalance, naming the trigger.
    await waitFor("a rebalance log line naming the join", () =>
      cluster!.logLines().some((l) => /^rebalance \(join of node n4\): n[123] releases \d+ of \d+ task/.test(l)),
    );
  }, 40_000);

  test("a node that stops abruptly and returns gets its share back", async () => {
    cluster = await balancedCluster(["n1", "n2", "n3", "n4"]);
    await cluster.kill("n2");
    await waitFor("the survivors to take over every task", () => cluster!.balanced() || undefined, { timeout: 15_000 });
    await cluster.settled();
    const before = [...cluster.counts().values()];
    const mark = Date.now();
    await cluster.start("n2");
    await waitFor("n2 to get its share back (±20 %)", () => cluster!.balanced() || undefined, { timeout: 15_000 });
    const moved = cluster.ledger.runs.filter((r) => r.started >= mark).length;
    const share = TASKS / 4;
    expect(moved).toBeLessThanOrEqual(minimumMoves(before, share) + 4 * allowanceFor(share, 0.05));
    expect(cluster.ledger.overlaps).toEqual([]);
    await waitFor("a rebalance log line naming the return", () =>
      cluster!.logLines().some((l) => l.startsWith("rebalance (return of node n2)")),
    );
  }, 40_000);

  test("graceful handoff: the tasks of a node that shuts down spread evenly over the others", async () => {
    cluster = await balancedCluster(["n1", "n2", "n3", "n4"]);
    const mark = Date.now();
    await cluster.stop("n1");
    await waitFor("the other three to share n1's tasks (±20 %)", () => cluster!.balanced() || undefined, {
      timeout: 15_000,
    });
    // Only n1's tasks moved: the survivors did not shuffle among themselves.
    const moved = cluster.ledger.runs.filter((r) => r.started >= mark).length;
    expect(moved).toBeLessThanOrEqual(TASKS / 4 + 3 * allowanceFor(TASKS / 3, 0.05));
    expect(cluster.ledger.overlaps).toEqual([]);
  }, 40_000);
});
