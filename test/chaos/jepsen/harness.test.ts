/** The chaos harness's own parts that need no cluster: the seeded schedule and reading histories. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAULT_KINDS, FaultSchedule } from "./faults.ts";
import { readHistory } from "./history.ts";
import { Random } from "./random.ts";

describe("chaos harness", () => {
  test("the same seed gives the same fault schedule, and every round has every kind once", () => {
    const take = (seed: number) => {
      const s = new FaultSchedule(new Random(seed));
      return Array.from({ length: 3 * FAULT_KINDS.length }, () => s.next());
    };
    expect(take(42)).toEqual(take(42));
    expect(take(42)).not.toEqual(take(43));
    const rounds = take(7);
    for (let r = 0; r < 3; r++) {
      expect([...rounds.slice(r * FAULT_KINDS.length, (r + 1) * FAULT_KINDS.length)].sort()).toEqual(
        [...FAULT_KINDS].sort(),
      );
    }
  });

  test("histories from several files merge in time order; a torn last line is skipped, not fatal", () => {
    const dir = mkdtempSync(join(tmpdir(), "metafora-chaos-history-"));
    try {
      writeFileSync(
        join(dir, "n1.jsonl"),
        `${JSON.stringify({ k: "step", node: "n1", task: "t", token: 1, step: 1, mono: 30, wall: 30 })}\n{"k":"st`,
      );
      writeFileSync(
        join(dir, "harness.jsonl"),
        `${JSON.stringify({ k: "fault", id: 1, kind: "compaction", target: "etcd", start: 20, end: 25, wall: 20 })}\n${JSON.stringify({ k: "proc", node: "n1", pid: 1, event: "spawn", mono: 10, wall: 10 })}\n`,
      );
      writeFileSync(join(dir, "notes.txt"), "not a history file");
      const { events, skippedLines } = readHistory(dir);
      expect(events.map((e) => e.k)).toEqual(["proc", "fault", "step"]);
      expect(skippedLines).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
