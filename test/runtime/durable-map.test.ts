/** The embedded coordinator's on-disk map: durable set/delete, crash-torn tails, compaction. */
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src/log.ts";
import type { Logger } from "../../src/types.ts";
import { writeFileAtomic } from "../../src/runtime/embedded/atomic-file.ts";
import { DurableMap } from "../../bench/support/durable-map.ts";
import { lockDataDir } from "../../src/runtime/embedded/data-dir-lock.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "metafora-durable-"));
  dirs.push(d);
  return d;
}
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warn: (m: string) => warnings.push(m), warnings };
}

describe("DurableMap", () => {
  test("what set/delete acknowledged is there after reopening (no close: as after kill -9)", () => {
    const d = dir();
    const a = DurableMap.open<{ n: number }>(d, "tasks", silentLogger);
    for (let i = 0; i < 50; i++) a.set(`t${i}`, { n: i });
    for (let i = 0; i < 50; i += 2) a.delete(`t${i}`);
    a.set("t1", { n: 100 });
    // Not closed: the process "dies" here.
    const b = DurableMap.open<{ n: number }>(d, "tasks", silentLogger);
    expect(b.size).toBe(25);
    expect(b.get("t1")).toEqual({ n: 100 });
    expect(b.has("t0")).toBe(false);
    expect(b.get("t49")).toEqual({ n: 49 });
  });

  test("a torn last journal line (crash mid-write) is dropped with a warning; later writes are not glued to it", () => {
    const d = dir();
    const a = DurableMap.open<number>(d, "m", silentLogger);
    a.set("kept", 1);
    appendFileSync(join(d, "m.journal.jsonl"), '{"op":"set","k":"torn","v":');
    const log = recordingLogger();
    const b = DurableMap.open<number>(d, "m", log);
    expect(b.get("kept")).toBe(1);
    expect(b.has("torn")).toBe(false);
    expect(log.warnings.join("\n")).toContain("incomplete last line");
    b.set("after", 2);
    const c = DurableMap.open<number>(d, "m", silentLogger);
    expect([...c.entries()].sort()).toEqual([
      ["after", 2],
      ["kept", 1],
    ]);
  });

  test("the journal is compacted into the snapshot once it outgrows the map", () => {
    const d = dir();
    const m = DurableMap.open<number>(d, "c", silentLogger, { minCompact: 10 });
    for (let i = 0; i < 100; i++) m.set("same", i);
    const journalLines = readFileSync(join(d, "c.journal.jsonl"), "utf8").split("\n").filter(Boolean).length;
    expect(journalLines).toBeLessThanOrEqual(11);
    const snapshot = JSON.parse(readFileSync(join(d, "c.snapshot.json"), "utf8")) as {
      entries: Record<string, number>;
    };
    expect(snapshot.entries.same).toBeGreaterThanOrEqual(89);
    expect(DurableMap.open<number>(d, "c", silentLogger).get("same")).toBe(99);
  });

  test("a damaged snapshot refuses to open with a message naming the file (never silently empty)", () => {
    const d = dir();
    writeFileSync(join(d, "x.snapshot.json"), "{not json");
    expect(() => DurableMap.open(d, "x", silentLogger)).toThrow(/x\.snapshot\.json is not valid JSON/);
    writeFileSync(join(d, "y.snapshot.json"), '{"hello":1}');
    expect(() => DurableMap.open(d, "y", silentLogger)).toThrow(/not a metafora data file/);
  });

  test("writeFileAtomic leaves no temp file and replaces the content whole", () => {
    const d = dir();
    const p = join(d, "f.json");
    writeFileAtomic(p, "one");
    writeFileAtomic(p, "two");
    expect(readFileSync(p, "utf8")).toBe("two");
    expect(readdirSync(d)).toEqual(["f.json"]);
  });
});

describe("data dir lock", () => {
  test("a second lock on a live holder's dir is refused; a stale lock is taken over", () => {
    const d = dir();
    const lock = lockDataDir(d);
    // Our own pid counts as stale (a restarted container's pid 1), so fake a live holder: pid 1.
    writeFileSync(join(d, "lock"), "1\n");
    expect(() => lockDataDir(d)).toThrow(/in use by another metafora process \(pid 1\)/);
    writeFileSync(join(d, "lock"), "999999999\n"); // no such process
    const again = lockDataDir(d);
    expect(readFileSync(join(d, "lock"), "utf8").trim()).toBe(String(process.pid));
    again.release();
    expect(existsSync(join(d, "lock"))).toBe(false);
    lock.release();
  });
});
