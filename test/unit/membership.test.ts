/**
 * MembershipRebalancer on its own: node-set changes are debounced into one trigger (join,
 * return or leave), releases are paced in slices over the window with the balancer asked
 * again before each slice, the drift check runs, and bad options fail clearly.
 */
import { describe, expect, test } from "bun:test";
import {
  MembershipRebalancer,
  describeTrigger,
  resolveRebalanceOptions,
  type RebalanceHost,
  type RebalanceReport,
} from "../../src/balancers/membership.ts";
import { ConfigError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import type { Balancer, ClusterState, RebalanceTrigger } from "../../src/types.ts";
import { sleep, waitFor } from "../support/wait.ts";

class FakeCluster implements ClusterState {
  nodes = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  nodeTaskCounts(): ReadonlyMap<string, number> {
    return this.nodes;
  }
  unclaimedCount(): number {
    return 0;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(names: string[]): void {
    this.nodes = new Map(names.map((n) => [n, 0]));
    for (const l of this.listeners) l();
  }
}

function rig(balancer: Partial<Balancer>, opts: ConstructorParameters<typeof MembershipRebalancer>[1]) {
  const cluster = new FakeCluster();
  cluster.nodes = new Map([
    ["me", 0],
    ["a", 0],
  ]);
  const stops: { at: number; ids: string[] }[] = [];
  const reports: RebalanceReport[] = [];
  const triggers: RebalanceTrigger[] = [];
  const host: RebalanceHost = {
    node: "me",
    balancer: {
      canClaim: () => ({ claim: true }),
      balance: () => [],
      ...balancer,
      ...(balancer.rebalance ? { rebalance: (t: RebalanceTrigger) => (triggers.push(t), balancer.rebalance!(t)) } : {}),
    } as Balancer,
    log: silentLogger,
    cluster: () => cluster,
    active: () => true,
    taskCount: () => 100,
    stop: (ids) => {
      stops.push({ at: Date.now(), ids: [...ids] });
      return [...ids];
    },
    report: (r) => reports.push(r),
  };
  const r = new MembershipRebalancer(host, opts);
  return { cluster, stops, reports, triggers, r };
}

describe("MembershipRebalancer", () => {
  test("a burst of changes becomes one debounced trigger; a name seen before is a return", async () => {
    const { cluster, triggers, r } = rig({ rebalance: () => [] }, { debounce: 30, jitter: 0, driftEvery: Infinity });
    r.start();
    cluster.set(["me", "a", "b"]);
    cluster.set(["me", "a", "b", "c"]);
    await waitFor("one trigger", () => triggers.length === 1);
    expect(triggers[0]).toEqual({ kind: "join", nodes: ["b", "c"] });
    cluster.set(["me", "a", "c"]);
    await waitFor("the leave", () => triggers.length === 2);
    expect(triggers[1]).toEqual({ kind: "leave", nodes: ["b"] });
    cluster.set(["me", "a", "b", "c"]);
    await waitFor("the return", () => triggers.length === 3);
    expect(triggers[2]).toEqual({ kind: "return", nodes: ["b"] });
    await sleep(60);
    expect(triggers).toHaveLength(3);
    r.close();
  });

  test("releases are paced: slices spread over the window, the balancer asked again each time", async () => {
    // Like FairBalancer: tasks already stopping are no candidates, so the answer shrinks.
    let excess = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const stopped = new Set<string>();
    const { stops, reports, r } = rig(
      {
        rebalance: () => excess.filter((id) => !stopped.has(id)),
      },
      { debounce: 0, jitter: 0, window: 300, steps: 4, driftEvery: Infinity },
    );
    r.start();
    const run = r.run({ kind: "drift" });
    await waitFor("the first slice", () => stops.length === 1);
    for (const id of stops[0]!.ids) stopped.add(id);
    await waitFor("the second slice", () => stops.length === 2);
    for (const id of stops[1]!.ids) stopped.add(id);
    excess = excess.filter((id) => !stopped.has(id)).slice(0, 3); // the view changed: only 3 more are in excess now
    await waitFor("the third slice", () => stops.length === 3);
    for (const id of stops[2]!.ids) stopped.add(id);
    const released = await run;
    expect(stops.map((s) => s.ids.length)).toEqual([5, 5, 3]);
    expect(released).toHaveLength(13);
    expect(stops[2]!.at - stops[0]!.at).toBeGreaterThanOrEqual(190); // 2 intervals of 100 ms
    expect(reports).toHaveLength(1);
    expect(reports[0]!.released).toHaveLength(13);
    expect(reports[0]!.before).toBe(100);
    r.close();
  });

  test("the drift check asks the balancer periodically; nothing is reported when nothing moves", async () => {
    const { triggers, reports, r } = rig({ rebalance: () => [] }, { jitter: 0, driftEvery: 20 });
    r.start();
    await waitFor("three drift checks", () => triggers.filter((t) => t.kind === "drift").length >= 3);
    expect(reports).toEqual([]);
    r.close();
    const n = triggers.length;
    await sleep(60);
    expect(triggers.length).toBe(n);
  });

  test("a balancer without rebalance(), or a disabled rebalancer, does nothing", async () => {
    const { cluster, stops, r } = rig({}, { debounce: 0, jitter: 0, driftEvery: 10 });
    r.start();
    cluster.set(["me", "a", "b"]);
    await sleep(50);
    expect(stops).toEqual([]);
    r.close();
    const off = rig({ rebalance: () => ["x"] }, false);
    off.r.start();
    off.cluster.set(["me", "z"]);
    await sleep(50);
    expect(off.stops).toEqual([]);
  });

  test("options are validated; triggers are described for the log", () => {
    expect(() => resolveRebalanceOptions({ window: -1 })).toThrow(ConfigError);
    expect(() => resolveRebalanceOptions({ steps: 0 })).toThrow(/steps/);
    expect(() => resolveRebalanceOptions({ jitter: Infinity })).toThrow(/jitter/);
    expect(resolveRebalanceOptions({ driftEvery: Infinity }).driftEvery).toBe(Infinity);
    expect(describeTrigger({ kind: "join", nodes: ["n4"] })).toBe("join of node n4");
    expect(describeTrigger({ kind: "return", nodes: ["a", "b"] })).toBe("return of nodes a, b");
    expect(describeTrigger({ kind: "periodic" })).toBe("periodic");
  });
});
