/**
 * Balancers: Go Metafora's tests T1–T5 adapted, Go's worked examples, the inputs on which Go's
 * FairBalancer loops forever, claim-time fairness, and the resource reporters (T18).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DumbBalancer } from "../../src/balancers/dumb.ts";
import { allowanceFor, FairBalancer, shareOf } from "../../src/balancers/fair.ts";
import { cpuReporter, memoryReporter, parseMeminfo, parseProcStat } from "../../src/balancers/reporters.ts";
import { ResourceBalancer } from "../../src/balancers/resource.ts";
import { SleepBalancer } from "../../src/balancers/sleep.ts";
import { ConfigError } from "../../src/errors.ts";
import { getLogger, setLogger, silentLogger } from "../../src/log.ts";
import type { BalancerContext, RunningTask } from "../../src/types.ts";

function running(n: number, opts: { stoppedEvery?: number; startedAt?: (i: number) => number } = {}): RunningTask[] {
  return Array.from({ length: n }, (_, i) => {
    const t: { -readonly [K in keyof RunningTask]: RunningTask[K] } = {
      task: { id: `t${String(i).padStart(3, "0")}`, props: {} },
      handler: "h",
      started: opts.startedAt?.(i) ?? 1000 + i,
      token: i + 1,
    };
    if (opts.stoppedEvery && i % opts.stoppedEvery === 0) {
      t.stopped = 5000;
      t.stopReason = "balance";
    }
    return t;
  });
}

function context(node: string, tasks: RunningTask[], counts: Record<string, number>, unclaimed = 0): BalancerContext {
  return {
    node,
    tasks: () => tasks,
    cluster: { nodeTaskCounts: () => new Map(Object.entries(counts)), unclaimedCount: () => unclaimed },
  };
}

describe("DumbBalancer", () => {
  test("claims everything and never releases", () => {
    const b = new DumbBalancer();
    expect(b.canClaim()).toEqual({ claim: true });
    expect(b.balance()).toEqual([]);
  });
});

describe("FairBalancer", () => {
  test("T2: one node {node1:5} with 5 local tasks: claims, releases nothing", () => {
    const b = new FairBalancer();
    b.init(context("node1", running(5), { node1: 5 }));
    expect(b.canClaim({ id: "x" })).toEqual({ claim: true });
    expect(b.balance()).toEqual([]);
  });

  test("T3: {node1:10, node2:2} with 5 local tasks: avg 6, desired ceil(7.2)=8, releases exactly 2 distinct local tasks", () => {
    const tasks = running(5);
    const b = new FairBalancer();
    b.init(context("node1", tasks, { node1: 10, node2: 2 }));
    // Adapted: Go's CanClaim says yes. Ours has claim-time fairness: 5 local + 2 + the task at
    // hand over 2 nodes is a share of 4, which this node already holds, so it defers briefly.
    expect(b.canClaim({ id: "x" }).claim).toBe(false);
    const released = b.balance();
    expect(released).toHaveLength(2);
    expect(new Set(released).size).toBe(2);
    for (const id of released) expect(tasks.map((t) => t.task.id)).toContain(id);
  });

  test("T4: {node1:2, node2:10}: releases nothing", () => {
    const b = new FairBalancer();
    b.init(context("node1", running(2), { node1: 2, node2: 10 }));
    expect(b.balance()).toEqual([]);
  });

  test("two nodes {6, 0}: avg 3, desired ceil(3.6)=4, releases 2 (ends 4|2)", () => {
    const b = new FairBalancer();
    b.init(context("node1", running(6), { node1: 6, node2: 0 }));
    expect(b.balance()).toHaveLength(2);
  });

  test("a cluster view that counts only this node {9}: desired ceil(10.8)=11, releases nothing", () => {
    const b = new FairBalancer();
    b.init(context("node1", running(9), { node1: 9 }));
    expect(b.balance()).toEqual([]);
  });

  test("float average (Go floors first): {node1:7, node2:0, node3:0}: avg 2.33, desired ceil(2.8)=3, releases 4", () => {
    // Go: floor(7/3)=2, ceil(2.4)=3, releases 4 too; {5,0,0}: Go floor→1, desired 2; ours 5/3*1.2 = 2 exactly, not 3.
    const b = new FairBalancer();
    b.init(context("node1", running(7), { node1: 7, node2: 0, node3: 0 }));
    expect(b.balance()).toHaveLength(4);
    const b2 = new FairBalancer();
    b2.init(context("node1", running(5), { node1: 5, node2: 0, node3: 0 }));
    expect(b2.balance()).toHaveLength(3); // desired 2, not 3 from a rounding error
  });

  test("Go loops forever when the cluster counts more for this node than it runs; we cap at the local count", () => {
    // Stale owner keys or a duplicate name: cluster says 50, we run 3. Go picks 45 distinct ids out of 3.
    const tasks = running(3);
    const b = new FairBalancer();
    b.init(context("node1", tasks, { node1: 50, node2: 0, node3: 0 }));
    const released = b.balance();
    expect(released.sort()).toEqual(tasks.map((t) => t.task.id).sort());
  });

  test("tasks already stopping are not picked again, and the cap counts only the others", () => {
    const tasks = running(6, { stoppedEvery: 2 }); // t000, t002, t004 are stopping
    const b = new FairBalancer();
    b.init(context("node1", tasks, { node1: 40, node2: 0 }));
    const released = b.balance();
    expect(released.sort()).toEqual(["t001", "t003", "t005"]);
  });

  test("empty cluster view or fewer than 2 tasks: releases nothing", () => {
    const b = new FairBalancer();
    b.init(context("node1", running(4), {}));
    expect(b.balance()).toEqual([]);
    const b2 = new FairBalancer();
    b2.init(context("node1", running(1), { node1: 10, node2: 0 }));
    expect(b2.balance()).toEqual([]);
  });

  test("after releasing, claims are refused until the hold passes; the next balance clears it", () => {
    let now = 1_000_000;
    const b = new FairBalancer({ releaseHold: 2000, now: () => now });
    b.init(context("node1", running(6), { node1: 6, node2: 0 }));
    expect(b.balance()).toHaveLength(2);
    expect(b.canClaim({ id: "x" })).toEqual({ claim: false, until: 1_002_000 });
    now += 2000;
    // Hold over; with {6,0} and nothing unclaimed the share is 3, so it defers on fairness instead.
    const d = b.canClaim({ id: "x" });
    expect(d.claim).toBe(false);
  });

  test("claim-time fairness: at or above the fair share it defers while a node is below its share, up to the limit", () => {
    let now = 5_000_000;
    let n3 = 0;
    const b = new FairBalancer({ claimDefer: [100, 200], claimDeferLimit: 1000, random: () => 0.5, now: () => now });
    // 3 nodes, 32 tasks (n3 claiming the unclaimed ones) → share ceil(32/3) = 11; this node holds 11.
    b.init({
      node: "n1",
      tasks: () => running(11),
      cluster: {
        nodeTaskCounts: () =>
          new Map([
            ["n1", 11],
            ["n2", 10],
            ["n3", n3],
          ]),
        unclaimedCount: () => 11 - n3,
      },
    });
    const first = b.canClaim({ id: "new" });
    expect(first).toEqual({ claim: false, until: now + 150 });
    // Another task is deferred too.
    expect(b.canClaim({ id: "other" }).claim).toBe(false);
    // n3 is still below its share (and gaining) when "new" comes back: defer again, and again...
    now += 150;
    n3++;
    expect(b.canClaim({ id: "new" })).toEqual({ claim: false, until: now + 150 });
    now += 400;
    n3++;
    expect(b.canClaim({ id: "new" }).claim).toBe(false);
    now += 300;
    n3++;
    expect(b.canClaim({ id: "new" }).claim).toBe(false);
    // ...until it has waited claimDeferLimit in all: then it is claimed (no starvation).
    now += 150;
    n3++;
    expect(b.canClaim({ id: "new" })).toEqual({ claim: true });
  });

  test("claim-time fairness: near a big share the slack lets a node claim a few past it instead of deferring", () => {
    // n1 holds 1,005 tasks; the others and the unclaimed ones as given.
    const make = (others: Record<string, number>, unclaimed: number, claimSlack?: number) => {
      const b = new FairBalancer({ ...(claimSlack === undefined ? {} : { claimSlack }), random: () => 0 });
      b.init({
        node: "n1",
        tasks: () => running(1005),
        cluster: {
          nodeTaskCounts: () => new Map(Object.entries({ n1: 1005, ...others })),
          unclaimedCount: () => unclaimed,
        },
      });
      return b;
    };
    // 2 nodes, 2,000 tasks: share 1,000. Default slack 1 % of 1,000 = 10 tasks: claim up to 1,009.
    expect(make({ n2: 994 }, 1).canClaim({ id: "x" })).toEqual({ claim: true });
    // Without slack: at the share, a node below it gaining → defer.
    expect(make({ n2: 994 }, 1, 0).canClaim({ id: "x" }).claim).toBe(false);
    // With a node well below the share (a joiner: 3 nodes, share 1,000, n3 at 900), no slack
    // either: defer to it.
    expect(make({ n2: 1005, n3: 900 }, 90).canClaim({ id: "x" }).claim).toBe(false);
    expect(() => new FairBalancer({ claimSlack: 2 })).toThrow(/claimSlack must be a fraction from 0 to 1/);
  });

  test("claim-time fairness: deferring lasts only while the node below its share keeps gaining tasks", () => {
    let now = 5_000_000;
    let n2 = 0;
    const b = new FairBalancer({ claimDefer: [100, 100], claimDeferLimit: 10_000, random: () => 0, now: () => now });
    b.init({
      node: "n1",
      tasks: () => running(20),
      cluster: {
        nodeTaskCounts: () =>
          new Map([
            ["n1", 20],
            ["n2", n2],
          ]),
        unclaimedCount: () => 20 - n2,
      },
    });
    // share ceil(40/2) = 20: n1 is at it, n2 below. n2 claims steadily: n1 keeps deferring.
    expect(b.canClaim({ id: "x" }).claim).toBe(false);
    for (let i = 0; i < 15; i++) {
      now += 100;
      n2++;
      expect(b.canClaim({ id: "x" }).claim).toBe(false);
    }
    // n2 stops gaining (full, no handler): after half a second without progress, claim.
    now += 100;
    expect(b.canClaim({ id: "x" }).claim).toBe(false);
    now += 400;
    expect(b.canClaim({ id: "x" })).toEqual({ claim: true });
    // n2 loses tasks (it is shutting down): claim at once.
    expect(b.canClaim({ id: "y" }).claim).toBe(false);
    now += 100;
    n2--;
    expect(b.canClaim({ id: "y" })).toEqual({ claim: true });
  });

  test("claim-time fairness: a deferred task that comes back when nobody is below the share is claimed", () => {
    let now = 5_000_000;
    let counts: Record<string, number> = { n1: 11, n2: 10, n3: 10 };
    const b = new FairBalancer({ claimDefer: [100, 200], random: () => 0.5, now: () => now });
    b.init({
      node: "n1",
      tasks: () => running(11),
      cluster: { nodeTaskCounts: () => new Map(Object.entries(counts)), unclaimedCount: () => 0 },
    });
    expect(b.canClaim({ id: "new" }).claim).toBe(false);
    now += 150;
    counts = { n1: 11, n2: 12, n3: 12 }; // share ceil(36/3) = 12: n1 is now the one below
    expect(b.canClaim({ id: "new" })).toEqual({ claim: true });
  });

  test("claim-time fairness: below the share (counting unclaimed tasks) it claims at once", () => {
    const b = new FairBalancer();
    // 3 nodes, claimed 12 + unclaimed 18 → share 10; this node holds 4.
    b.init(context("n1", running(4), { n1: 4, n2: 8, n3: 0 }, 18));
    expect(b.canClaim({ id: "x" })).toEqual({ claim: true });
  });

  test("claim-time fairness uses taskCount() when the context has it, and counts itself when the view lacks it", () => {
    const b = new FairBalancer();
    const ctx = context("n1", [], { n2: 2 }, 0);
    b.init({ ...ctx, taskCount: () => 3 }); // nodes {n1 (self), n2}: share ceil((3+2+1)/2)=3 → defer
    expect(b.canClaim({ id: "x" }).claim).toBe(false);
    b.init({ ...ctx, taskCount: () => 2 }); // share ceil((2+2+1)/2)=3 → claim
    expect(b.canClaim({ id: "y" }).claim).toBe(true);
    b.init({ ...ctx, taskCount: () => 3 });
    expect(b.canClaim({ id: "x" }).claim).toBe(false);
  });

  test("rebalance: above ceil(share) + allowance it hands back down to ceil(share), only if a node is below its share", () => {
    // 3 nodes hold 100 each, a fourth joins: share 75, allowance max(1, ceil(3.75)) = 4.
    const tasks = running(100);
    const b = new FairBalancer();
    b.init(context("n1", tasks, { n1: 100, n2: 100, n3: 100, n4: 0 }));
    const released = b.rebalance({ kind: "join", nodes: ["n4"] });
    expect(released).toHaveLength(25);
    expect(new Set(released).size).toBe(25);
    // Within the allowance (79 ≤ 75 + 4): keeps everything, so nothing ping-pongs...
    const b2 = new FairBalancer();
    b2.init(context("n1", running(79), { n1: 79, n2: 79, n3: 79, n4: 63 }));
    expect(b2.rebalance({ kind: "drift" })).toEqual([]);
    // ...but a rebalance under way (a later paced step) carries on down to ceil(share).
    expect(b2.rebalance({ kind: "drift" }, { step: 2 })).toHaveLength(4);
    // Above the allowance but nobody below the share (the rest is unclaimed): nothing.
    const b3 = new FairBalancer();
    b3.init(context("n1", running(90), { n1: 90, n2: 80, n3: 80 }, 10));
    expect(b3.rebalance({ kind: "drift" })).toEqual([]);
    // Tasks already stopping count in the total but are not picked, nor counted as kept.
    const b4 = new FairBalancer();
    b4.init(context("n1", running(100, { stoppedEvery: 10 }), { n1: 100, n2: 100, n3: 100, n4: 0 }));
    const r4 = b4.rebalance({ kind: "drift" });
    expect(r4).toHaveLength(90 - 75);
    // Alone, or with a view that lacks the others: nothing.
    const b5 = new FairBalancer();
    b5.init(context("n1", running(10), { n1: 10 }));
    expect(b5.rebalance({ kind: "drift" })).toEqual([]);
  });

  test("rebalance counts foreign nodes (e.g. Go nodes) in the share like any other", () => {
    const b = new FairBalancer();
    b.init(context("ts1", running(150), { ts1: 150, ts2: 150, go1: 0 }));
    expect(b.rebalance({ kind: "return", nodes: ["go1"] })).toHaveLength(50);
  });

  test("shareOf and allowanceFor", () => {
    const cluster = { nodeTaskCounts: () => new Map(Object.entries({ a: 10, b: 4 })), unclaimedCount: () => 4 };
    expect(shareOf(cluster, "a")).toEqual({ share: 9, local: 10, nodes: 2, lowestOther: 4, unclaimed: 4 });
    expect(shareOf(cluster, "c", 3)).toEqual({ share: 7, local: 3, nodes: 3, lowestOther: 4, unclaimed: 4 });
    expect(allowanceFor(75, 0.05)).toBe(4);
    expect(allowanceFor(3, 0.05)).toBe(1);
    expect(allowanceFor(100, 0.05)).toBe(5);
  });

  test("rejects a bad threshold or defer range with a clear error", () => {
    expect(() => new FairBalancer({ allowance: 2 })).toThrow(/allowance must be a fraction from 0 to 1/);
    expect(() => new FairBalancer({ claimDeferLimit: -1 })).toThrow(/claimDeferLimit must be a number of ms/);
    expect(() => new FairBalancer({ threshold: 0 })).toThrow(/threshold must be a positive number/);
    expect(() => new FairBalancer({ claimDefer: [300, 100] })).toThrow(ConfigError);
  });
});

describe("ResourceBalancer (T1, on the current interface)", () => {
  const at = (pct: number) => ({ name: "fake", used: () => ({ used: pct, total: 100 }) });

  test("limits: (80, 75) and out-of-range values are rejected with the limits named; (80, 90) is fine", () => {
    expect(() => new ResourceBalancer(at(0), 80, 75)).toThrow(
      /claim limit must be below the release limit; got claim=80 release=75/,
    );
    expect(() => new ResourceBalancer(at(0), 0, 75)).toThrow(/integers from 1 to 100/);
    expect(() => new ResourceBalancer(at(0), 50, 101)).toThrow(/integers from 1 to 100/);
    expect(() => new ResourceBalancer(at(0), 80, 90)).not.toThrow();
  });

  test("at 75% (below release 90) balance releases nothing; claims below the claim limit", () => {
    const b = new ResourceBalancer(at(75), 80, 90);
    b.init(context("n", running(3), { n: 3 }));
    expect(b.balance()).toEqual([]);
    expect(b.canClaim()).toEqual({ claim: true });
  });

  test("at 90.1% and 99.9% balance releases exactly the oldest task that is not already stopping", () => {
    const tasks = running(4, { startedAt: (i) => [500, 100, 300, 200][i]!, stoppedEvery: 4 }); // t000 stopping
    for (const pct of [90.1, 99.9]) {
      const b = new ResourceBalancer(at(pct), 80, 90);
      b.init(context("n", tasks, { n: 4 }));
      expect(b.balance()).toEqual(["t001"]); // started 100, the oldest not stopping
    }
  });

  test("over the claim limit it refuses with a retry deadline (Go claimed anyway)", () => {
    const b = new ResourceBalancer(at(85), 80, 90, { retryAfter: 700, now: () => 10_000 });
    expect(b.canClaim()).toEqual({ claim: false, until: 10_700 });
  });

  test("a failing reporter counts as 0% used, is logged, and does not throw", () => {
    const warnings: string[] = [];
    const previous = getLogger();
    setLogger({ ...silentLogger, warn: (m: string) => warnings.push(m) });
    try {
      const b = new ResourceBalancer(
        {
          name: "disk",
          used: () => {
            throw new Error("boom");
          },
        },
        80,
        90,
      );
      expect(b.percentUsed()).toBe(0);
      expect(b.canClaim()).toEqual({ claim: true });
    } finally {
      setLogger(previous);
    }
    expect(warnings[0]).toContain("disk failed: Error: boom");
  });
});

describe("SleepBalancer (T5)", () => {
  test("10 canClaim calls with 0..9 running tasks take at least 45 × 30 ms; the event loop keeps running meanwhile", async () => {
    const b = new SleepBalancer();
    let count = 0;
    b.init({
      node: "n",
      tasks: () => running(count),
      cluster: { nodeTaskCounts: () => new Map(), unclaimedCount: () => 0 },
    });
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const start = performance.now();
    try {
      for (count = 0; count < 10; count++) expect(await b.canClaim()).toEqual({ claim: true });
    } finally {
      clearInterval(ticker);
    }
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(45 * 30 - 5); // timers may fire a hair early
    expect(ticks).toBeGreaterThan(10); // not a blocking sleep
    expect(b.balance()).toEqual([]);
  });
});

describe("resource reporters (T18)", () => {
  test("memory reporter on this machine: not the error sentinel, used <= total", () => {
    const { used, total } = memoryReporter().used();
    expect(total).toBeGreaterThan(100);
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(total);
  });

  test("MemAvailable is preferred; without it MemFree + Buffers + Cached (Go never parsed MemFree)", () => {
    const withAvailable =
      "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    6000000 kB\nBuffers:          500000 kB\nCached:          3000000 kB\n";
    expect(parseMeminfo(withAvailable)).toEqual({ used: 10_000_000, total: 16_000_000 });
    const old =
      "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nBuffers:          500000 kB\nCached:          3000000 kB\n";
    expect(parseMeminfo(old)).toEqual({ used: 11_500_000, total: 16_000_000 }); // Go: 12_500_000
    expect(parseMeminfo("garbage")).toBeUndefined();
  });

  test("memory reporter reads the given meminfo file and falls back to node:os when it is unreadable", () => {
    const dir = mkdtempSync(join(tmpdir(), "meminfo-"));
    const path = join(dir, "meminfo");
    writeFileSync(path, "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
    expect(memoryReporter(path).used()).toEqual({ used: 750, total: 1000 });
    const fallback = memoryReporter(join(dir, "missing")).used();
    expect(fallback.total).toBeGreaterThan(0);
    expect(fallback.used).toBeLessThanOrEqual(fallback.total);
  });

  test("cpu reporter: busy share between calls from /proc/stat, else load average; always 0..100", () => {
    expect(parseProcStat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n")).toEqual({ busy: 200, total: 1000 });
    const dir = mkdtempSync(join(tmpdir(), "stat-"));
    const path = join(dir, "stat");
    writeFileSync(path, "cpu  100 0 100 700 100 0 0 0 0 0\n");
    const r = cpuReporter(path);
    expect(r.used()).toEqual({ used: 20, total: 100 });
    writeFileSync(path, "cpu  400 0 100 800 100 0 0 0 0 0\n"); // +300 busy of +400
    expect(r.used()).toEqual({ used: 75, total: 100 });
    const live = cpuReporter().used();
    expect(live.used).toBeGreaterThanOrEqual(0);
    expect(live.used).toBeLessThanOrEqual(100);
    const fallback = cpuReporter(join(dir, "missing")).used();
    expect(fallback.total).toBe(100);
  });
});
