/** The run's report, as text: what a person reads first when a chaos run fails. */
import type { CheckResult, Violation } from "./checker.ts";
import type { FaultEvent } from "./history.ts";

export interface RunSummary {
  label: string;
  seed: number;
  durationMs: number;
  nodes: number;
  tasks: number;
  ttlSeconds: number;
  faults: FaultEvent[];
  result: CheckResult;
  historyDir?: string;
}

const MAX_LISTED = 12;

function describeViolation(v: Violation): string {
  const ev = Object.entries(v.evidence)
    .filter(([, x]) => x !== undefined && x !== "")
    .map(([k, x]) => `${k}=${typeof x === "string" ? x : JSON.stringify(x)}`)
    .join(" ");
  return `  [${v.kind}] ${v.message}\n      ${ev}`;
}

export function formatReport(s: RunSummary): string {
  const r = s.result;
  const lines: string[] = [];
  lines.push(
    `=== chaos run ${s.label}: seed ${s.seed} (replay: npm run chaos -- --seed ${s.seed} --duration ${Math.round(s.durationMs / 1000)}s --nodes ${s.nodes} --tasks ${s.tasks}) ===`,
  );
  lines.push(
    `${s.nodes} nodes, ${s.tasks} tasks, lease TTL ${s.ttlSeconds} s, faults for ${Math.round(s.durationMs / 1000)} s`,
  );
  const prim =
    r.primitives.fallback > 0
      ? `FALLBACK (no ctx.sleep/ctx.owned in this runtime) for ${r.primitives.fallback} of ${r.primitives.fallback + r.primitives.ctx} starts`
      : "ctx.sleep/ctx.owned";
  lines.push(`handler primitives: ${prim}`);
  lines.push(
    `history: ${r.counts.starts} starts, ${r.counts.steps} steps, register ${r.counts.commitsAccepted} accepted / ${r.counts.commitsRejected} rejected (fenced) / ${r.counts.commitsUnanswered} unanswered, ${r.counts.registerWrites} writes seen by etcd's watch`,
  );
  const kinds = Object.entries(r.faultsByKind).map(([k, n]) => `${k} ×${n}`);
  lines.push(`faults (${s.faults.length}): ${kinds.join(", ") || "none"}`);
  for (const f of s.faults)
    lines.push(`  #${f.id} ${f.kind} ${f.target}: ${Math.round(f.end - f.start)} ms${f.detail ? `, ${f.detail}` : ""}`);
  lines.push("failover (fault start → task running again under a newer token):");
  for (const f of r.failover) {
    const fig =
      f.medianMs === undefined
        ? "no task moved"
        : `median ${f.medianMs} ms, worst ${f.worstMs} ms over ${f.moved} task moves`;
    lines.push(
      `  ${f.kind.padEnd(13)} ×${f.faults}: ${fig}${f.notBackInWindow ? `; ${f.notBackInWindow} not back before the next fault` : ""}`,
    );
  }
  const troubled = s.faults.filter((f) => f.detail?.includes("harness error"));
  if (troubled.length > 0)
    lines.push(
      `faults the harness could not complete (not violations, but look): ${troubled.map((f) => `#${f.id}`).join(", ")}`,
    );
  lines.push(
    `tasks lost: ${r.tasksLost.length}${r.tasksLost.length ? ` (${r.tasksLost.slice(0, MAX_LISTED).join(", ")})` : ""}`,
  );
  const byKind = new Map<string, Violation[]>();
  for (const v of r.violations) {
    const list = byKind.get(v.kind);
    if (list) list.push(v);
    else byKind.set(v.kind, [v]);
  }
  lines.push(
    `violations: ${r.violations.length}${r.violations.length ? ` (${[...byKind].map(([k, l]) => `${k} ×${l.length}`).join(", ")})` : ""}`,
  );
  for (const [, list] of byKind) {
    for (const v of list.slice(0, MAX_LISTED)) lines.push(describeViolation(v));
    if (list.length > MAX_LISTED) lines.push(`  … and ${list.length - MAX_LISTED} more ${list[0]!.kind}`);
  }
  if (s.historyDir) lines.push(`history kept in ${s.historyDir}`);
  return lines.join("\n");
}
