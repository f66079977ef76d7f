/**
 * Elasticity on real etcd, with the default settings (lease TTL 10 s, default rebalance and
 * FairBalancer options), 4 nodes and 300 tasks:
 *   - join: 3 nodes run every task; a 4th starts: time until every node is within ±20 % of
 *     the fair share, and tasks moved against the minimum possible (Σ max(0, count − ceil(share)));
 *   - return: the 4th node's process is SIGKILLed; once the others run everything it starts
 *     again under its name: time from its restart to ±20 %, moves against the minimum;
 *   - SIGTERM handoff: the 4th node's process gets SIGTERM: the spread over the 3 others once
 *     they run everything.
 * The baseline, measured in the same run, is the behaviour before membership rebalancing:
 * `rebalance: false` and `claimDeferLimit: 0` (defer a task once, then claim it), with the
 * periodic balance (5 min) never reached; its SIGTERM figure is not comparable (the node that
 * gets SIGTERM there holds almost nothing, as it never got its share back). The 4th node runs
 * in its own process (as in
 * production: it is the one killed); the other three are in this process.
 *
 *   bun bench/elastic.ts [runs=5] [tasks=300] [leaseTtl=10]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { FairBalancer, type FairBalancerOptions } from "../src/balancers/fair.ts";
import type { RebalanceOptions } from "../src/balancers/membership.ts";
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { Consumer } from "../src/consumer/consumer.ts";
import { silentLogger } from "../src/log.ts";
import type { Handler, HandlerResult } from "../src/types.ts";
import { client, type EtcdServer, fmt, median, startEtcd, submitAll, taskIds, until } from "./etcd-support.ts";

const RUNS = Number(process.argv[2] ?? 5);
const TASKS = Number(process.argv[3] ?? 300);
const TTL = Number(process.argv[4] ?? 10);
/** The bound the issue asks for; a baseline that has not converged by then is reported as such. */
const BOUND = 2 * TTL * 1000 + 5000;

interface Mode {
  readonly name: string;
  readonly fair: FairBalancerOptions;
  readonly rebalance: RebalanceOptions | false | undefined;
}
const ELASTIC: Mode = { name: "elastic (defaults)", fair: {}, rebalance: undefined };
const BASELINE: Mode = {
  name: "baseline (no membership rebalance, defer once)",
  fair: { claimDeferLimit: 0 },
  rebalance: false,
};

/** Running handlers per node and every start, from in-process nodes and the child alike. */
class Tally {
  private readonly where = new Map<string, string>();
  readonly counts = new Map<string, number>();
  starts: number[] = [];
  doubles = 0;

  start(id: string, node: string): void {
    if (this.where.has(id)) this.doubles++;
    this.where.set(id, node);
    this.counts.set(node, (this.counts.get(node) ?? 0) + 1);
    this.starts.push(performance.now());
  }

  stop(id: string, node: string): void {
    if (this.where.get(id) !== node) return;
    this.where.delete(id);
    this.counts.set(node, (this.counts.get(node) ?? 0) - 1);
  }

  died(node: string): void {
    for (const [id, n] of [...this.where]) if (n === node) this.stop(id, node);
  }

  on(node: string): number {
    return this.counts.get(node) ?? 0;
  }

  running(): number {
    return this.where.size;
  }

  movesSince(t: number): number {
    return this.starts.filter((s) => s >= t).length;
  }

  within(nodes: readonly string[], tolerance = 0.2): boolean {
    const share = TASKS / nodes.length;
    return this.running() === TASKS && nodes.every((n) => Math.abs(this.on(n) - share) <= tolerance * share);
  }

  spread(nodes: readonly string[]): string {
    const share = TASKS / nodes.length;
    const worst = Math.max(...nodes.map((n) => Math.abs(this.on(n) - share) / share));
    return `${nodes.map((n) => this.on(n)).join("/")} (share ${share.toFixed(1)}, worst ±${(worst * 100).toFixed(1)} %)`;
  }
}

function idleHandler(tally: Tally, node: string): Handler {
  return {
    run: (task, ctx) =>
      new Promise<HandlerResult>((resolve) => {
        tally.start(task.id, node);
        const stop = (): void => {
          tally.stop(task.id, node);
          resolve("release");
        };
        if (ctx.signal.aborted) stop();
        else ctx.signal.addEventListener("abort", stop, { once: true });
      }),
  };
}

async function inProcess(etcd: EtcdServer, ns: string, name: string, tally: Tally, mode: Mode): Promise<Consumer> {
  const coordinator = new EtcdCoordinator(
    { endpoints: [etcd.endpoint], namespace: ns, node: name, leaseTtl: TTL },
    { log: silentLogger },
  );
  const consumer = new Consumer({
    coordinator,
    node: name,
    handler: idleHandler(tally, name),
    balancer: new FairBalancer(mode.fair),
    ...(mode.rebalance !== undefined ? { rebalance: mode.rebalance } : {}),
    log: silentLogger,
  });
  await consumer.start();
  return consumer;
}

/** The fourth node, in its own process; retried while its name is still held by its old lease. */
async function child(etcd: EtcdServer, ns: string, name: string, tally: Tally, mode: Mode): Promise<ChildProcess> {
  const fixture = join(import.meta.dir, "..", "test", "etcd", "fixtures", "elastic-node.ts");
  const opts = JSON.stringify({
    fair: mode.fair,
    ...(mode.rebalance !== undefined ? { rebalance: mode.rebalance } : {}),
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    const proc = spawn(process.execPath, [fixture, etcd.endpoint, ns, name, String(TTL), opts], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const outcome = await new Promise<"ready" | "taken" | "failed">((resolve) => {
      createInterface({ input: proc.stdout! }).on("line", (line) => {
        const [what, id] = line.split(" ");
        if (what === "ready") resolve("ready");
        else if (what === "start") tally.start(id!, name);
        else if (what === "stop") tally.stop(id!, name);
      });
      proc.on("exit", (code) => resolve(code === 3 ? "taken" : "failed"));
    });
    if (outcome === "ready") return proc;
    if (outcome === "failed") throw new Error(`node process ${name} failed to start`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`node name ${name} stayed taken`);
}

function signal(proc: ChildProcess, sig: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill(sig);
  return exited;
}

/** Fewest moves to an even spread: Σ max(0, count − ceil(share)). */
function minimumMoves(counts: number[], share: number): number {
  return counts.reduce((sum, c) => sum + Math.max(0, c - Math.ceil(share)), 0);
}

/** Fewest moves to bring every node within ±20 %: the larger of what must leave and must arrive. */
function minimumMovesWithin(counts: number[], share: number): number {
  const out = counts.reduce((sum, c) => sum + Math.max(0, c - Math.floor(1.2 * share)), 0);
  const into = counts.reduce((sum, c) => sum + Math.max(0, Math.ceil(0.8 * share) - c), 0);
  return Math.max(out, into);
}

/** ms until `probe`, or undefined if the bound passed first. */
async function timeTo(probe: () => boolean, bound: number): Promise<number | undefined> {
  try {
    return await until("convergence", probe, bound, 10);
  } catch {
    return undefined;
  }
}

interface RunResult {
  join?: number;
  joinMoves: number;
  joinMin: number;
  joinMin20: number;
  retMin20: number;
  ret?: number;
  retMoves: number;
  retMin: number;
  handoff: string;
  handoffWorst: number;
  doubles: number;
}

async function oneRun(etcd: EtcdServer, mode: Mode, run: number): Promise<RunResult> {
  const ns = `/bench-elastic-${mode.rebalance === false ? "base" : "new"}-${run}-${Date.now()}`;
  const tally = new Tally();
  const c = client(etcd, ns);
  const locals = ["n1", "n2", "n3"];
  const consumers: Consumer[] = [];
  let proc: ChildProcess | undefined;
  try {
    for (const n of locals) consumers.push(await inProcess(etcd, ns, n, tally, mode));
    await submitAll(c, taskIds(TASKS));
    await until("3 nodes to run every task", () => tally.running() === TASKS, 60_000, 20);
    const all = [...locals, "p4"];

    // Join.
    let before = locals.map((n) => tally.on(n));
    let t0 = performance.now();
    proc = await child(etcd, ns, "p4", tally, mode);
    const join = await timeTo(() => tally.within(all), BOUND);
    await new Promise((r) => setTimeout(r, 3000)); // let paced releases finish before counting
    const joinMoves = tally.movesSince(t0);
    const joinMin = minimumMoves([...before, 0], TASKS / 4);
    const joinMin20 = minimumMovesWithin([...before, 0], TASKS / 4);

    // kill -9, survivors take over after the lease expires, then the return.
    await signal(proc, "SIGKILL");
    tally.died("p4");
    await until("the survivors to run every task", () => tally.running() === TASKS, 4 * TTL * 1000 + 20_000, 20);
    await new Promise((r) => setTimeout(r, 2000));
    before = locals.map((n) => tally.on(n));
    t0 = performance.now();
    proc = await child(etcd, ns, "p4", tally, mode);
    const ret = await timeTo(() => tally.within(all), BOUND);
    await new Promise((r) => setTimeout(r, 3000));
    const retMoves = tally.movesSince(t0);
    const retMin = minimumMoves([...before, 0], TASKS / 4);
    const retMin20 = minimumMovesWithin([...before, 0], TASKS / 4);

    // SIGTERM handoff from a balanced cluster (if it is not balanced, the baseline's skew shows).
    await signal(proc, "SIGTERM");
    await until("the others to run every task", () => tally.running() === TASKS, 30_000, 5);
    await new Promise((r) => setTimeout(r, 1000));
    const share = TASKS / 3;
    const handoffWorst = Math.max(...locals.map((n) => Math.abs(tally.on(n) - share) / share));
    return {
      ...(join !== undefined ? { join } : {}),
      joinMoves,
      joinMin,
      joinMin20,
      retMin20,
      ...(ret !== undefined ? { ret } : {}),
      retMoves,
      retMin,
      handoff: tally.spread(locals),
      handoffWorst,
      doubles: tally.doubles,
    };
  } finally {
    if (proc) await signal(proc, "SIGKILL");
    await Promise.all(consumers.map((x) => x.shutdown({ timeout: 5000 })));
    c.close();
  }
}

const show = (ms: number | undefined): string => (ms === undefined ? `not within ${fmt(BOUND)}` : fmt(ms));
function summary(values: (number | undefined)[]): string {
  const got = values.filter((v): v is number => v !== undefined);
  const missed = values.length - got.length;
  if (got.length === 0) return `never within ${fmt(BOUND)} (${values.length} run(s))`;
  return `median ${fmt(median(got))}, worst ${missed > 0 ? `not within ${fmt(BOUND)} (${missed} run(s))` : fmt(Math.max(...got))}`;
}

const etcd = await startEtcd();
try {
  for (const [mode, runs] of [
    [BASELINE, 1],
    [ELASTIC, RUNS],
  ] as const) {
    const results: RunResult[] = [];
    for (let run = 1; run <= runs; run++) {
      const r = await oneRun(etcd, mode, run);
      results.push(r);
      console.log(
        `${mode.name} run ${run}: join → ±20 % ${show(r.join)} (moved ${r.joinMoves}; minimum ${r.joinMin} for an even spread, ${r.joinMin20} for ±20 %); ` +
          `return → ±20 % ${show(r.ret)} (moved ${r.retMoves}; minimum ${r.retMin} even, ${r.retMin20} for ±20 %); SIGTERM handoff spread ${r.handoff}; double runs ${r.doubles}`,
      );
    }
    console.log(
      `${mode.name}, ${TASKS} tasks, 4 nodes, lease TTL ${TTL} s (bound 2 × TTL + 5 s = ${fmt(BOUND)}):\n` +
        `  time to ±20 % after a join:   ${summary(results.map((r) => r.join))}\n` +
        `  time to ±20 % after a return: ${summary(results.map((r) => r.ret))}\n` +
        `  tasks moved per join:   ${results.map((r) => `${r.joinMoves}/${r.joinMin20}/${r.joinMin}`).join(", ")} (moved / minimum for ±20 % / minimum for an even spread)\n` +
        `  tasks moved per return: ${results.map((r) => `${r.retMoves}/${r.retMin20}/${r.retMin}`).join(", ")} (moved / minimum for ±20 % / minimum for an even spread)\n` +
        `  worst node after a SIGTERM handoff: ${results.map((r) => `±${(r.handoffWorst * 100).toFixed(1)} %`).join(", ")} of the share\n` +
        `  double runs: ${results.reduce((n, r) => n + r.doubles, 0)}`,
    );
  }
} finally {
  await etcd.stop();
}
