/**
 * The embedded coordinator's SQLite store: group commit, the journal import from a data dir
 * written by the previous format, damage that refuses to start (never a quiet start with less),
 * bounded history, checkpoints, and the salvage tools (check, export).
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src/log.ts";
import type { RuntimeConfig } from "../../src/runtime/config/schema.ts";
import { openEmbeddedBackend } from "../../src/runtime/embedded/backend.ts";
import { EmbeddedStore } from "../../src/runtime/embedded/sqlite-store.ts";
import { StoreDamagedError } from "../../src/runtime/embedded/store-errors.ts";
import { HISTORY_LIMIT } from "../../src/runtime/history/task-history.ts";
import { capturingLogger } from "./ops-fixture.ts";

const FIXTURE = join(import.meta.dir, "fixtures/journal-v1");
const dirs: string[] = [];
const open: EmbeddedStore[] = [];

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "metafora-store-"));
  dirs.push(d);
  return d;
}

function openStore(dir: string, log = silentLogger): EmbeddedStore {
  const s = EmbeddedStore.open(dir, log);
  open.push(s);
  return s;
}

/** What a kill -9 leaves behind: the files as they are while the store is still open. */
function crashImage(dir: string): string {
  const copy = tempDir();
  for (const f of readdirSync(dir))
    if (f.startsWith("metafora.db") || f === "store.json") copyFileSync(join(dir, f), join(copy, f));
  return copy;
}

function refusal(fn: () => unknown): StoreDamagedError {
  try {
    const s = fn();
    if (s instanceof EmbeddedStore) s.close();
  } catch (err) {
    expect(err).toBeInstanceOf(StoreDamagedError);
    return err as StoreDamagedError;
  }
  throw new Error("expected the store to refuse to open");
}

/** Replace the character at `offset` in every occurrence of `needle`; returns how many. */
function flipAll(bytes: Buffer, needle: string, offset: number, to: string): number {
  let n = 0;
  for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
    bytes[at + offset] = to.charCodeAt(0);
    n++;
  }
  return n;
}

function config(dataDir: string): RuntimeConfig {
  return { node: "n1", dataDir } as RuntimeConfig;
}

describe("SQLite store", () => {
  test("concurrent submits share commits (group commit) and every acknowledged one is there after a crash", async () => {
    const dir = tempDir();
    const store = openStore(dir);
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 50; i++) await store.putTask(`t:${w}-${i}`, { w, i });
    });
    await Promise.all(writers);
    expect(store.writes.writes).toBe(400);
    // 8 writers in lock step: one commit per round, not one per write.
    expect(store.writes.commits).toBeLessThanOrEqual(100);
    const after = openStore(crashImage(dir));
    expect(after.tasks().length).toBe(400);
    expect(after.tasks().find((t) => t.id === "t:7-49")?.props).toEqual({ w: 7, i: 49 });
  });

  test("a write that fails alone does not fail the others in its batch", async () => {
    const store = openStore(tempDir());
    const results = await Promise.allSettled([
      store.putTask("a", {}),
      store.putCheckpoint("b", { value: 42 as unknown as string, token: 1, at: new Date().toISOString() }),
      store.putTask("c", {}),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(
      store
        .tasks()
        .map((t) => t.id)
        .sort(),
    ).toEqual(["a", "c"]);
  });

  test("checkpoints: put, get, sizes, removed with the task", async () => {
    const store = openStore(tempDir());
    await store.putTask("job:1", {});
    await store.putCheckpoint("job:1", {
      value: JSON.stringify({ offset: 17, name: "ü" }),
      token: 5,
      at: "2030-01-01T00:00:00.000Z",
    });
    expect(store.getCheckpoint("job:1")).toEqual({
      value: '{"offset":17,"name":"ü"}',
      token: 5,
      at: "2030-01-01T00:00:00.000Z",
    });
    expect(store.checkpointInfos().get("job:1")).toEqual({ bytes: 25, at: "2030-01-01T00:00:00.000Z" });
    await store.removeTask("job:1");
    expect(store.getCheckpoint("job:1")).toBeUndefined();
  });

  test("history keeps the last 50 events per task; attempts and errors count them all", async () => {
    const store = openStore(tempDir());
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      writes.push(
        store.addHistory("t", {
          at: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
          kind: "claimed",
          node: "n1",
          token: i + 1,
        }),
      );
      if (i % 10 === 0)
        writes.push(
          store.addHistory("t", { at: new Date().toISOString(), kind: "error", node: "n1", message: `boom ${i}` }),
        );
    }
    await Promise.all(writes);
    const events = store.history("t");
    expect(events.length).toBe(HISTORY_LIMIT);
    expect(events.at(-1)).toMatchObject({ kind: "claimed", token: 60 });
    expect(store.summary("t")).toMatchObject({ attempts: 60, errors: 6, lastError: { message: "boom 50" } });
  });

  test("the token ceiling survives a crash", async () => {
    const dir = tempDir();
    const store = openStore(dir);
    await store.setTokenCeiling(123_456);
    expect(openStore(crashImage(dir)).tokenCeiling()).toBe(123_456);
  });
});

describe("journal-format data dir", () => {
  test("is imported once on first start, its files kept aside, and the log says so", async () => {
    const dir = tempDir();
    cpSync(FIXTURE, dir, { recursive: true });
    rmSync(join(dir, "README.md"));
    const logs: string[] = [];
    const backend = await openEmbeddedBackend(config(dir), capturingLogger(logs));
    try {
      const ids = (await backend.client.tasks()).map((t) => t.id).sort();
      expect(ids).toEqual([
        "job:commanded",
        "job:paused",
        "job:waiting",
        "nightly",
        "worker:after-restart",
        "worker:t1",
        "worker:t2",
        "worker:t3",
        "worker:t4",
      ]);
      const props = new Map((await backend.client.tasks()).map((t) => [t.id, t.props]));
      expect(props.get("worker:t1")).toEqual({ n: 1, name: "täsk 1" });
      expect(props.get("nightly")).toEqual({ depth: 2, handler: "worker" });
      expect(props.get("worker:after-restart")).toEqual({ x: [1, 2] });
      expect(await backend.readState("job:paused")).toEqual({ code: "paused" });
      expect(await backend.readState("job:waiting")).toEqual({ code: "paused" });
      expect(
        logs.some(
          (l) =>
            l.includes("imported the journal-format data") && l.includes("9 task(s), 2 state(s), 1 waiting command(s)"),
        ),
      ).toBe(true);
    } finally {
      await backend.close();
    }
    const backups = readdirSync(dir).filter((f) => f.startsWith("journal-backup-"));
    expect(backups.length).toBe(1);
    expect(readdirSync(join(dir, backups[0]!)).sort()).toEqual(
      readdirSync(FIXTURE)
        .filter((f) => f !== "README.md")
        .sort(),
    );
    expect(existsSync(join(dir, "tasks.snapshot.json"))).toBe(false);

    // The waiting command and the token ceiling came along; a second start imports nothing.
    const store = openStore(dir);
    expect(store.commands()).toEqual([["job:commanded", '{"message":"pause"}']]);
    expect(store.tokenCeiling()).toBeGreaterThan(30_000);
    store.close();
    open.length = 0;
    const logs2: string[] = [];
    const again = await openEmbeddedBackend(config(dir), capturingLogger(logs2));
    expect((await again.client.tasks()).length).toBe(9);
    await again.close();
    expect(logs2.some((l) => l.includes("imported"))).toBe(false);
  });
});

describe("damage is never silent", () => {
  async function populated(): Promise<{ dir: string; store: EmbeddedStore }> {
    const dir = tempDir();
    const store = openStore(dir);
    for (let i = 0; i < 200; i++)
      await store.putTask(`task:${String(i).padStart(4, "0")}`, { payload: "x".repeat(100), i });
    return { dir, store };
  }

  async function closedCleanly(): Promise<string> {
    const { dir, store } = await populated();
    store.close();
    open.length = 0;
    return dir;
  }

  test("a clean close leaves no WAL behind, and the marker says so; a restart has everything", async () => {
    const dir = await closedCleanly();
    expect(JSON.parse(readFileSync(join(dir, "store.json"), "utf8"))).toMatchObject({
      open: false,
      database: "metafora.db",
    });
    expect(openStore(dir).tasks().length).toBe(200);
  });

  test("bytes flipped inside a task row: refused, naming the file", async () => {
    const dir = await closedCleanly();
    const file = join(dir, "metafora.db");
    const bytes = readFileSync(file);
    // task:0123 -> task:0193: a different, plausible id (every copy: freed pages keep old ones)
    expect(flipAll(bytes, "task:0123", 7, "9")).toBeGreaterThan(0);
    writeFileSync(file, bytes);
    const err = refusal(() => EmbeddedStore.open(dir, silentLogger));
    expect(err.message).toContain(file);
  });

  test("flipped bytes in the page structure: refused by the integrity check", async () => {
    const dir = await closedCleanly();
    const file = join(dir, "metafora.db");
    const bytes = readFileSync(file);
    for (let p = 4096; p < bytes.length; p += 4096) bytes[p + 3] = bytes[p + 3]! ^ 0xff; // each page's cell count
    writeFileSync(file, bytes);
    expect(refusal(() => EmbeddedStore.open(dir, silentLogger)).message).toContain(file);
  });

  test("a truncated database: refused", async () => {
    const dir = await closedCleanly();
    const file = join(dir, "metafora.db");
    truncateSync(file, Math.floor(statSync(file).size / 2));
    expect(refusal(() => EmbeddedStore.open(dir, silentLogger)).message).toContain(file);
  });

  test("a deleted database with the marker left: refused, never a new empty one", async () => {
    const dir = await closedCleanly();
    rmSync(join(dir, "metafora.db"));
    const err = refusal(() => EmbeddedStore.open(dir, silentLogger));
    expect(err.message).toContain(join(dir, "metafora.db"));
    expect(err.message).toContain("is missing");
    expect(existsSync(join(dir, "metafora.db"))).toBe(false);
  });

  test("another database put in its place: refused", async () => {
    const dir = await closedCleanly();
    const other = await closedCleanly();
    copyFileSync(join(other, "metafora.db"), join(dir, "metafora.db"));
    expect(refusal(() => EmbeddedStore.open(dir, silentLogger)).message).toContain("expects store");
  });

  test("after a crash, a removed WAL (it held acknowledged commits): refused, naming the WAL", async () => {
    const { dir } = await populated();
    const image = crashImage(dir);
    expect(statSync(join(image, "metafora.db-wal")).size).toBeGreaterThan(0);
    rmSync(join(image, "metafora.db-wal"));
    const err = refusal(() => EmbeddedStore.open(image, silentLogger));
    expect(err.message).toContain(join(image, "metafora.db-wal"));
  });

  test("after a crash, a WAL damaged in the middle: refused; a torn tail: recovered with a warning", async () => {
    const { dir } = await populated();
    const image = crashImage(dir);
    const wal = join(image, "metafora.db-wal");
    const bytes = readFileSync(wal);
    const middle = Buffer.from(bytes);
    middle[32 + 24 + 100] = middle[32 + 24 + 100]! ^ 0xff; // the first frame's page
    writeFileSync(wal, middle);
    expect(refusal(() => EmbeddedStore.open(image, silentLogger)).message).toContain(wal);

    const torn = crashImage(dir);
    const tornWal = join(torn, "metafora.db-wal");
    const full = readFileSync(tornWal);
    writeFileSync(tornWal, full.subarray(0, full.length - 1000)); // the last frame half written
    const logs: string[] = [];
    const store = openStore(torn, capturingLogger(logs));
    expect(logs.some((l) => l.startsWith("warn") && l.includes(tornWal) && l.includes("incomplete frames"))).toBe(true);
    expect(store.tasks().length).toBe(199); // the last write, never acknowledged as durable by a torn frame
  });

  test("store check reports row damage; store export salvages every readable row", async () => {
    const dir = await closedCleanly();
    const file = join(dir, "metafora.db");
    const bytes = readFileSync(file);
    expect(flipAll(bytes, '"i":7}', 4, "8")).toBeGreaterThan(0);
    writeFileSync(file, bytes);
    const salvage = EmbeddedStore.open(dir, silentLogger, { salvage: true });
    try {
      const problems = salvage.check();
      expect(problems.length).toBe(1);
      expect(problems[0]).toContain("tasks: row");
      const lines: string[] = [];
      expect(salvage.export((l) => lines.push(l))).toBe(200);
      const rows = lines.map((l) => JSON.parse(l) as { type: string; id: string; damaged?: boolean });
      expect(rows.every((r) => r.type === "task")).toBe(true);
      expect(rows.filter((r) => r.damaged).length).toBe(1);
    } finally {
      salvage.close();
    }
  });
});
