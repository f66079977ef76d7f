/**
 * One chaos run, start to finish: build (or reuse) the compiled binary, start etcd and the
 * nodes, submit the tasks, inject seeded random faults for the given duration, let the cluster
 * settle, then check the merged history and print the report.
 *
 *   npm run chaos -- --duration 10m [--seed N] [--nodes 5] [--tasks 60] [--ttl 4] [--keep]
 *
 * Exit code 0 when the checker found no violation, 1 otherwise (the history is then kept and
 * its folder printed), 2 for bad arguments.
 */
import { parseDuration } from "../../../src/runtime/config/duration.ts";
import { metaforaBinary } from "../../runtime/support/binary.ts";
import { checkHistory, type FinalObservation } from "./checker.ts";
import { sleep } from "../../support/wait.ts";
import { Cluster } from "./cluster.ts";
import { FaultSchedule, restartNode, runFault } from "./faults.ts";
import { type FaultEvent, monoNow, readHistory } from "./history.ts";
import { Random, randomSeed } from "./random.ts";
import { formatReport, type RunSummary } from "./report.ts";

export interface ChaosOptions {
  /** Told apart in the output (e.g. "fixed-seed", "random-seed"). */
  label: string;
  seed: number;
  durationMs: number;
  nodes: number;
  tasks: number;
  ttlSeconds: number;
  /** Handler pace: ctx.sleep(stepMs) between steps. */
  stepMs: number;
  /** Keep the run's folder (history, handler) even when it passes. */
  keepFiles?: boolean;
  log?: (line: string) => void;
}

export const DEFAULTS = { nodes: 3, tasks: 60, ttlSeconds: 4, stepMs: 50 } as const;

export function taskIds(n: number): string[] {
  const width = String(n - 1).length;
  return Array.from({ length: n }, (_, i) => `chaos:t${String(i).padStart(width, "0")}`);
}

async function observe(cluster: Cluster): Promise<FinalObservation> {
  const liveNodes = cluster.liveNodes();
  const [views, owners] = await Promise.all([cluster.views(), cluster.owners()]);
  return { at: monoNow(), views, owners, liveNodes };
}

/** Every task listed by exactly one live node, and its owner key agrees. */
function settled(obs: FinalObservation, tasks: readonly string[]): boolean {
  const live = new Set(obs.liveNodes);
  return tasks.every((id) => {
    const running = obs.views.flatMap((v) =>
      v.tasks.filter((t) => t.id === id && !t.stopped).map((t) => ({ node: v.node, token: t.token })),
    );
    const owner = obs.owners.get(id);
    return (
      running.length === 1 &&
      owner !== undefined &&
      live.has(owner.node) &&
      owner.node === running[0]!.node &&
      owner.token === running[0]!.token
    );
  });
}

async function waitSettled(
  cluster: Cluster,
  tasks: readonly string[],
  timeoutMs: number,
): Promise<{ obs: FinalObservation; ok: boolean }> {
  const deadline = monoNow() + timeoutMs;
  let obs = await observe(cluster).catch(() => undefined);
  while (!(obs && settled(obs, tasks)) && monoNow() < deadline) {
    await sleep(500);
    obs = await observe(cluster).catch(() => obs);
  }
  const last = obs ?? { at: monoNow(), views: [], owners: new Map(), liveNodes: cluster.liveNodes() };
  return { obs: last, ok: settled(last, tasks) };
}

async function restartDeadNodes(cluster: Cluster): Promise<void> {
  for (const name of cluster.names) if (!cluster.isAlive(name)) await restartNode(cluster, name).catch(() => undefined);
}

export async function runChaos(options: ChaosOptions): Promise<RunSummary & { report: string; passed: boolean }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const rng = new Random(options.seed);
  const tasks = taskIds(options.tasks);
  const ttlMs = options.ttlSeconds * 1000;
  log(
    `chaos ${options.label}: seed ${options.seed}, ${options.nodes} nodes, ${options.tasks} tasks, TTL ${options.ttlSeconds} s, ${Math.round(options.durationMs / 1000)} s of faults`,
  );
  const binary = await metaforaBinary();
  const cluster = new Cluster({ binary, nodes: options.nodes, ttlSeconds: options.ttlSeconds, stepMs: options.stepMs });
  const faults: FaultEvent[] = [];
  let keep = options.keepFiles === true;
  try {
    await cluster.startEtcd();
    // Nodes first, tasks second: every node then sees the others when it claims, and the
    // claims spread (a node alone in the cluster would take everything).
    await Promise.all(cluster.names.map((n) => cluster.spawnNode(n)));
    await cluster.submit(tasks);
    // Settling is bounded in TTLs: a claim waits at most for an expired lease plus a watch round.
    const first = await waitSettled(cluster, tasks, 10 * ttlMs + 30_000);
    log(`chaos ${options.label}: cluster ${first.ok ? "settled" : "NOT settled"} before the first fault`);

    const schedule = new FaultSchedule(rng);
    const began = monoNow();
    for (let id = 1; monoNow() - began < options.durationMs && id <= 10_000; id++) {
      await restartDeadNodes(cluster);
      const fault = await runFault(cluster, rng, id, schedule.next());
      cluster.harness.write(fault);
      faults.push(fault);
      log(
        `chaos ${options.label}: fault #${fault.id} ${fault.kind} ${fault.target} (${Math.round(fault.end - fault.start)} ms) ${fault.detail ?? ""}`,
      );
      // Let the cluster recover (bounded: two TTLs) before the next fault, so each fault hits
      // running tasks and its failover is measured on its own; then a random gap.
      await restartDeadNodes(cluster);
      await waitSettled(cluster, tasks, 2 * ttlMs);
      const gap = rng.between(1000, 3000);
      if (monoNow() - began + gap >= options.durationMs) break;
      await sleep(gap);
    }

    // Quiet period: no more faults; every task must come back to exactly one live node.
    await restartDeadNodes(cluster);
    const quiet = await waitSettled(cluster, tasks, 15 * ttlMs + 30_000);
    // Then stay quiet two more TTLs and look again: a task that keeps moving is not settled.
    await sleep(2 * ttlMs);
    const final = (await waitSettled(cluster, tasks, 1)).obs;
    log(`chaos ${options.label}: ${quiet.ok ? "settled" : "NOT settled"} after the quiet period`);

    await cluster.stop({ keepFiles: true });
    const { events } = readHistory(cluster.historyDir);
    const result = checkHistory(events, tasks, final);
    const passed = result.violations.length === 0;
    if (!passed) keep = true;
    const summary: RunSummary = {
      label: options.label,
      seed: options.seed,
      durationMs: options.durationMs,
      nodes: options.nodes,
      tasks: options.tasks,
      ttlSeconds: options.ttlSeconds,
      faults,
      result,
      ...(keep ? { historyDir: cluster.historyDir } : {}),
    };
    const report = formatReport(summary);
    log(report);
    return { ...summary, report, passed };
  } finally {
    await cluster.stop({ keepFiles: keep }).catch(() => undefined);
  }
}

function parseArgs(argv: string[]): ChaosOptions {
  const opts: ChaosOptions = { label: "manual", seed: randomSeed(), durationMs: 60_000, ...DEFAULTS };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (text: string, flag: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    switch (flag) {
      case "--duration": {
        const ms = parseDuration(value(i++, flag));
        if (ms === undefined || ms <= 0)
          throw new Error(`--duration must be a duration like 60s or 10m, got ${JSON.stringify(argv[i])}`);
        opts.durationMs = ms;
        break;
      }
      case "--seed":
        opts.seed = int(value(i++, flag), flag, 0);
        break;
      case "--nodes":
        opts.nodes = int(value(i++, flag), flag, 2);
        break;
      case "--tasks":
        opts.tasks = int(value(i++, flag), flag, 1);
        break;
      case "--ttl":
        opts.ttlSeconds = int(value(i++, flag), flag, 2);
        break;
      case "--step":
        opts.stepMs = int(value(i++, flag), flag, 1);
        break;
      case "--keep":
        opts.keepFiles = true;
        break;
      default:
        throw new Error(
          `unknown option ${JSON.stringify(flag)}; expected --duration, --seed, --nodes, --tasks, --ttl, --step or --keep`,
        );
    }
  }
  if (opts.seed > 0xffffffff) throw new Error(`--seed must fit in 32 bits, got ${opts.seed}`);
  return opts;
}

if (import.meta.main) {
  // Ctrl-C: exit through process.exit so the exit hooks kill etcd and every node.
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));
  let options: ChaosOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`npm run chaos: ${(err as Error).message}`);
    process.exit(2);
  }
  const outcome = await runChaos(options);
  process.exit(outcome.passed ? 0 : 1);
}
