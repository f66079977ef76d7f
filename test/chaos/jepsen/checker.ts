/**
 * The history checker: given everything the handlers and the harness recorded, and what the
 * cluster looked like after the quiet period, say whether "each task runs at most once, and
 * at the end exactly once" held, with evidence for every breach. Pure: no I/O, no clocks, so
 * it is unit-tested on synthetic histories.
 *
 * Violations:
 *  - stale-step: a step by an owner with a lower token after a newer owner's first step of the
 *    same task (two owners acting at once: the promise broken);
 *  - register-lower-token: the fenced register accepted a write with a lower token than one it
 *    had already accepted (by etcd's revision order: the fence itself broken);
 *  - not-running-once: after the quiet period a task is not running exactly once on a live
 *    node (zero or several /info entries, or /info, the owner key and the history disagree);
 *  - unexplained-exit: a node process exited without the harness having signalled it;
 *  - no-progress: the run recorded no step at all (the suite would prove nothing).
 */
import type {
  CommitEvent,
  FaultEvent,
  FaultKind,
  HistoryEvent,
  ProcEvent,
  RegisterEvent,
  StartEvent,
  StepEvent,
} from "./history.ts";
import type { NodeView, OwnerMap } from "./cluster.ts";

export type ViolationKind =
  | "stale-step"
  | "register-lower-token"
  | "not-running-once"
  | "unexplained-exit"
  | "no-progress";

export interface Violation {
  kind: ViolationKind;
  task?: string;
  node?: string;
  /** One line a human can act on. */
  message: string;
  /** The facts behind it (tokens, nodes, times). */
  evidence: Record<string, unknown>;
}

/** The cluster after the quiet period. */
export interface FinalObservation {
  /** Monotonic time of the observation. */
  at: number;
  views: NodeView[];
  owners: OwnerMap;
  /** Nodes whose process was alive. */
  liveNodes: string[];
}

export interface FailoverFigures {
  kind: FaultKind;
  faults: number;
  /** Task failovers measured: fault start → the task running again under a newer token. */
  moved: number;
  medianMs?: number;
  worstMs?: number;
  /** Tasks the fault took away that did not run again before the next fault. */
  notBackInWindow: number;
}

export interface CheckResult {
  violations: Violation[];
  faultsByKind: Record<string, number>;
  failover: FailoverFigures[];
  /** Tasks nobody runs after the quiet period. */
  tasksLost: string[];
  counts: {
    starts: number;
    steps: number;
    commitsAccepted: number;
    commitsRejected: number;
    commitsUnanswered: number;
    registerWrites: number;
  };
  /** Whether the handlers used the runtime's ctx.sleep/ctx.owned or the fallback. */
  primitives: { ctx: number; fallback: number };
}

/** Append to the list under `key` (in place: histories have hundreds of thousands of events). */
function groupInto<T>(groups: Map<string, T[]>, key: string, item: T): void {
  const list = groups.get(key);
  if (list) list.push(item);
  else groups.set(key, [item]);
}

/** The fault active at (or the last one ended before) time t, for evidence. */
function faultAround(faults: FaultEvent[], t: number): string | undefined {
  let last: FaultEvent | undefined;
  for (const f of faults) {
    if (f.start > t) break;
    last = f;
  }
  if (!last) return undefined;
  const during = t <= last.end;
  return `#${last.id} ${last.kind} ${last.target} (${during ? "during it" : `${Math.round(t - last.end)} ms after it ended`})`;
}

function staleSteps(steps: StepEvent[], commits: CommitEvent[], faults: FaultEvent[]): Violation[] {
  const out: Violation[] = [];
  // What the fenced register made of each step: a stale step it rejected did no harm downstream.
  const outcome = new Map<string, CommitEvent["outcome"]>();
  for (const c of commits) outcome.set(`${c.task}#${c.token}#${c.step}`, c.outcome);
  const byTask = new Map<string, StepEvent[]>();
  for (const s of steps) groupInto(byTask, s.task, s);
  for (const [task, list] of byTask) {
    list.sort((a, b) => a.mono - b.mono);
    let newest: StepEvent | undefined;
    for (const s of list) {
      if (!newest || s.token > newest.token) {
        newest = s;
        continue;
      }
      if (s.token < newest.token) {
        out.push({
          kind: "stale-step",
          task,
          node: s.node,
          message: `${task}: step ${s.step} by ${s.node} (token ${s.token}) ${Math.round(s.mono - newest.mono)} ms after ${newest.node} (token ${newest.token}) took its first step`,
          evidence: {
            staleNode: s.node,
            staleToken: s.token,
            staleStep: s.step,
            staleAt: new Date(s.wall).toISOString(),
            newerNode: newest.node,
            newerToken: newest.token,
            newerFirstStepAt: new Date(newest.wall).toISOString(),
            lateByMs: Math.round(s.mono - newest.mono),
            register: outcome.get(`${task}#${s.token}#${s.step}`) ?? "no answer recorded",
            fault: faultAround(faults, s.mono),
          },
        });
      }
    }
  }
  return out;
}

interface AcceptedWrite {
  task: string;
  token: number;
  node: string;
  step: number;
  rev: number;
  source: "etcd watch" | "handler";
}

function registerOrder(writes: AcceptedWrite[]): Violation[] {
  const out: Violation[] = [];
  const byTask = new Map<string, AcceptedWrite[]>();
  for (const w of writes) groupInto(byTask, w.task, w);
  for (const [task, list] of byTask) {
    // One write per revision (both sources report the same ones).
    const byRev = new Map<number, AcceptedWrite>();
    for (const w of list) if (!byRev.has(w.rev) || w.source === "etcd watch") byRev.set(w.rev, w);
    const ordered = [...byRev.values()].sort((a, b) => a.rev - b.rev);
    let highest: AcceptedWrite | undefined;
    for (const w of ordered) {
      if (highest && w.token < highest.token) {
        out.push({
          kind: "register-lower-token",
          task,
          node: w.node,
          message: `${task}: the register accepted token ${w.token} from ${w.node} at revision ${w.rev} after token ${highest.token} from ${highest.node} at revision ${highest.rev}`,
          evidence: {
            lowerToken: w.token,
            lowerNode: w.node,
            lowerRev: w.rev,
            lowerStep: w.step,
            higherToken: highest.token,
            higherNode: highest.node,
            higherRev: highest.rev,
            source: w.source,
          },
        });
      }
      if (!highest || w.token > highest.token) highest = w;
    }
  }
  return out;
}

function finalState(
  tasks: readonly string[],
  starts: StartEvent[],
  final: FinalObservation,
): { violations: Violation[]; lost: string[] } {
  const violations: Violation[] = [];
  const lost: string[] = [];
  const live = new Set(final.liveNodes);
  for (const task of tasks) {
    const running = final.views.flatMap((v) =>
      v.tasks.filter((t) => t.id === task && !t.stopped).map((t) => ({ node: v.node, token: t.token })),
    );
    const owner = final.owners.get(task);
    const problems: string[] = [];
    if (running.length === 0) problems.push("no live node runs it");
    if (running.length > 1)
      problems.push(`${running.length} nodes run it (${running.map((r) => `${r.node}#${r.token}`).join(", ")})`);
    if (!owner) problems.push("no owner key");
    else if (!live.has(owner.node)) problems.push(`owner key names ${owner.node}, which is not a live node`);
    const one = running.length === 1 ? running[0]! : undefined;
    if (one && owner && (owner.node !== one.node || owner.token !== one.token)) {
      problems.push(`owner key says ${owner.node}#${owner.token} but /info says ${one.node}#${one.token}`);
    }
    if (one && !starts.some((s) => s.task === task && s.token === one.token && s.node === one.node)) {
      problems.push(`the history has no start by ${one.node} with token ${one.token}`);
    }
    if (problems.length === 0) continue;
    if (running.length === 0) lost.push(task);
    violations.push({
      kind: "not-running-once",
      task,
      message: `${task} after the quiet period: ${problems.join("; ")}`,
      evidence: { running, owner: owner ?? null, liveNodes: final.liveNodes },
    });
  }
  return { violations, lost };
}

function unexplainedExits(procs: ProcEvent[]): Violation[] {
  return procs
    .filter((p) => p.event === "exit" && p.expected === false)
    .map((p) => ({
      kind: "unexplained-exit" as const,
      node: p.node,
      message: `node ${p.node} (pid ${p.pid}) exited with ${p.signal ? `signal ${p.signal}` : `code ${p.code}`} and no fault caused it`,
      evidence: {
        pid: p.pid,
        code: p.code ?? null,
        signal: p.signal ?? null,
        at: new Date(p.wall).toISOString(),
        tail: p.tail ?? "",
      },
    }));
}

const NODE_FAULTS: ReadonlySet<FaultKind> = new Set(["node-kill", "node-pause", "node-term", "lease-revoke"]);

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Failover per fault: each task running when the fault began (for a node fault: on that node;
 * for an owner-key deletion: that task) that later starts under a newer token before the next
 * fault begins counts once, with the time from the fault's start to that start. A run the
 * balancer handed over is a planned move, not a failover, and is left out.
 */
function failovers(
  starts: StartEvent[],
  stops: HistoryEvent[],
  faults: FaultEvent[],
  endOfHistory: number,
): FailoverFigures[] {
  const byKind = new Map<FaultKind, { faults: number; times: number[]; notBack: number }>();
  const startsByTask = new Map<string, StartEvent[]>();
  for (const s of starts) groupInto(startsByTask, s.task, s);
  const stopOf = new Map<string, { mono: number; reason: string }>();
  for (const e of stops) if (e.k === "stop") stopOf.set(`${e.task}#${e.token}`, { mono: e.mono, reason: e.reason });
  faults.forEach((f, i) => {
    const figures = byKind.get(f.kind) ?? { faults: 0, times: [], notBack: 0 };
    figures.faults++;
    byKind.set(f.kind, figures);
    const windowEnd = faults[i + 1]?.start ?? endOfHistory;
    for (const [task, list] of startsByTask) {
      if (f.kind === "owner-delete" && task !== f.target) continue;
      const before = list.filter((s) => s.mono <= f.start);
      const current = before[before.length - 1];
      if (!current) continue;
      const stopped = stopOf.get(`${task}#${current.token}`);
      if (stopped !== undefined && stopped.mono <= f.start) continue; // it was not running
      // Handed over by the balancer: a planned move, not a failover.
      if (stopped?.reason === "balance") continue;
      if (NODE_FAULTS.has(f.kind) && current.node !== f.target) continue;
      const next = list.find((s) => s.mono > f.start && s.token > current.token);
      if (next && next.mono <= windowEnd) figures.times.push(next.mono - f.start);
      else if (NODE_FAULTS.has(f.kind) || f.kind === "owner-delete") figures.notBack++;
    }
  });
  return [...byKind].map(([kind, v]) => {
    const fig: FailoverFigures = { kind, faults: v.faults, moved: v.times.length, notBackInWindow: v.notBack };
    const med = median(v.times);
    if (med !== undefined) {
      fig.medianMs = Math.round(med);
      fig.worstMs = Math.round(Math.max(...v.times));
    }
    return fig;
  });
}

export function checkHistory(
  events: readonly HistoryEvent[],
  tasks: readonly string[],
  final: FinalObservation,
): CheckResult {
  const starts = events.filter((e): e is StartEvent => e.k === "start");
  const steps = events.filter((e): e is StepEvent => e.k === "step");
  const commits = events.filter((e): e is CommitEvent => e.k === "commit");
  const registers = events.filter((e): e is RegisterEvent => e.k === "register");
  const procs = events.filter((e): e is ProcEvent => e.k === "proc");
  const faults = events.filter((e): e is FaultEvent => e.k === "fault").sort((a, b) => a.start - b.start);

  const accepted: AcceptedWrite[] = [
    ...registers.map((r) => ({
      task: r.task,
      token: r.token,
      node: r.node,
      step: r.step,
      rev: r.rev,
      source: "etcd watch" as const,
    })),
    ...commits
      .filter((c) => c.outcome === "accepted" && typeof c.rev === "number" && Number.isFinite(c.rev))
      .map((c) => ({
        task: c.task,
        token: c.token,
        node: c.node,
        step: c.step,
        rev: c.rev!,
        source: "handler" as const,
      })),
  ];

  const violations: Violation[] = [];
  if (steps.length === 0) {
    violations.push({
      kind: "no-progress",
      message: "no handler recorded a single step: the run proves nothing",
      evidence: { starts: starts.length },
    });
  }
  violations.push(...staleSteps(steps, commits, faults), ...registerOrder(accepted), ...unexplainedExits(procs));
  const end = finalState(tasks, starts, final);
  violations.push(...end.violations);

  const faultsByKind: Record<string, number> = {};
  for (const f of faults) faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1;
  const lastTime = events.reduce((m, e) => Math.max(m, e.k === "fault" ? e.end : e.mono), final.at);

  return {
    violations,
    faultsByKind,
    failover: failovers(
      starts,
      events.filter((e) => e.k === "stop"),
      faults,
      lastTime,
    ),
    tasksLost: end.lost,
    counts: {
      starts: starts.length,
      steps: steps.length,
      commitsAccepted: commits.filter((c) => c.outcome === "accepted").length,
      commitsRejected: commits.filter((c) => c.outcome === "rejected").length,
      commitsUnanswered: commits.filter((c) => c.outcome === "error").length,
      registerWrites: registers.length,
    },
    primitives: {
      ctx: starts.filter((s) => s.primitives === "ctx").length,
      fallback: starts.filter((s) => s.primitives === "fallback").length,
    },
  };
}
