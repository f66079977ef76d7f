/**
 * The chaos run's history: what every handler did (start, step, commit, stop) and what the
 * harness did (node processes, faults), as JSON lines, one file per writer. Handlers append
 * synchronously so a SIGKILL loses at most the line being written; the checker reads every
 * file, skips a torn last line, and orders events by their monotonic time.
 *
 * Time: `mono` is performance.timeOrigin + performance.now() in the writing process, in ms. It
 * never steps with the wall clock inside one process, and all processes run on one machine, so
 * it orders events across processes too. `wall` is Date.now(), for humans.
 */
import { appendFileSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** A handler began running a task (a claim was won). */
export interface StartEvent {
  k: "start";
  node: string;
  pid: number;
  task: string;
  token: number;
  /** "ctx": the runtime's ctx.sleep/ctx.owned; "fallback": emulated with the abort signal. */
  primitives: "ctx" | "fallback";
  mono: number;
  wall: number;
}

/** One step: the side effect a task exists for. Recorded before it is committed. */
export interface StepEvent {
  k: "step";
  node: string;
  task: string;
  token: number;
  step: number;
  mono: number;
  wall: number;
}

/** The answer of the fenced register to one step's write. */
export interface CommitEvent {
  k: "commit";
  node: string;
  task: string;
  token: number;
  step: number;
  /** accepted: etcd took the write; rejected: a higher token was stored; error: no answer. */
  outcome: "accepted" | "rejected" | "error";
  /** etcd revision of the accepted write (its mod revision). */
  rev?: number;
  /** rejected: the token the register held. */
  stored?: number;
  error?: string;
  mono: number;
}

/** A handler returned. */
export interface StopEvent {
  k: "stop";
  node: string;
  task: string;
  token: number;
  reason: string;
  steps: number;
  mono: number;
  wall: number;
}

/** A node process was spawned or exited (written by the harness). */
export interface ProcEvent {
  k: "proc";
  node: string;
  pid: number;
  event: "spawn" | "exit";
  /** exit: the harness had signalled this process (a fault or the final shutdown). */
  expected?: boolean;
  code?: number | null;
  signal?: string | null;
  /** The last lines the process printed (exit only). */
  tail?: string;
  mono: number;
  wall: number;
}

export type FaultKind =
  | "node-kill"
  | "node-pause"
  | "etcd-pause"
  | "etcd-restart"
  | "lease-revoke"
  | "compaction"
  | "owner-delete"
  | "node-term";

/** One fault, from the moment it was injected until the harness undid it. */
export interface FaultEvent {
  k: "fault";
  id: number;
  kind: FaultKind;
  /** A node name, "etcd", or a task id. */
  target: string;
  start: number;
  end: number;
  detail?: string;
  wall: number;
}

/** An accepted write seen by the harness's own watch on the registers (etcd's history). */
export interface RegisterEvent {
  k: "register";
  task: string;
  token: number;
  step: number;
  node: string;
  rev: number;
  mono: number;
}

export type HistoryEvent = StartEvent | StepEvent | CommitEvent | StopEvent | ProcEvent | FaultEvent | RegisterEvent;

/** When an event happened, for ordering (a fault by its start). */
export function eventTime(e: HistoryEvent): number {
  return e.k === "fault" ? e.start : e.mono;
}

export function monoNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Appends JSON lines to one file, synchronously. */
export class HistoryWriter {
  constructor(readonly file: string) {}
  write(e: HistoryEvent): void {
    appendFileSync(this.file, `${JSON.stringify(e)}\n`);
  }
}

/** Every event in every `*.jsonl` file of `dir`, ordered by time. Torn or foreign lines are counted, not fatal. */
export function readHistory(dir: string): { events: HistoryEvent[]; skippedLines: number } {
  const events: HistoryEvent[] = [];
  let skippedLines = 0;
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith(".jsonl"))
    .sort()) {
    for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        const e = JSON.parse(line) as HistoryEvent;
        if (e && typeof e === "object" && typeof e.k === "string") events.push(e);
        else skippedLines++;
      } catch {
        skippedLines++;
      }
    }
  }
  return { events: sortHistory(events), skippedLines };
}

/** Stable order by time. */
export function sortHistory(events: HistoryEvent[]): HistoryEvent[] {
  return events
    .map((e, i) => ({ e, i }))
    .sort((a, b) => eventTime(a.e) - eventTime(b.e) || a.i - b.i)
    .map((x) => x.e);
}
