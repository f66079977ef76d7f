/**
 * The data dir format before SQLite: per map (tasks, states, meta, commands) a snapshot
 * `<name>.snapshot.json` plus a journal `<name>.journal.jsonl` of changes since. A data dir in
 * that format is imported once into the new database, in the transaction that creates it,
 * and its files are then moved into `journal-backup-<time>/` inside the data dir (kept, not
 * deleted: the operator removes them once satisfied). Reading never writes to the old files.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../types.ts";
import { StoreDamagedError } from "./store-errors.ts";

export const JOURNAL_MAPS = ["tasks", "states", "meta", "commands"] as const;
type MapName = (typeof JOURNAL_MAPS)[number];

export function journalFiles(dataDir: string): string[] {
  return JOURNAL_MAPS.flatMap((name) => [`${name}.snapshot.json`, `${name}.journal.jsonl`]).filter((f) =>
    existsSync(join(dataDir, f)),
  );
}

export interface JournalData {
  tasks: Map<string, unknown>;
  states: Map<string, unknown>;
  meta: Map<string, unknown>;
  commands: Map<string, unknown>;
}

/** Read every map of the old format; damage in a snapshot refuses (exit 78), like the old code did. */
export function readJournalDataDir(dataDir: string, log: Logger): JournalData {
  const read = (name: MapName): Map<string, unknown> => readMap(dataDir, name, log);
  return { tasks: read("tasks"), states: read("states"), meta: read("meta"), commands: read("commands") };
}

function readMap(dir: string, name: MapName, log: Logger): Map<string, unknown> {
  const data = new Map<string, unknown>();
  const snapshotPath = join(dir, `${name}.snapshot.json`);
  const journalPath = join(dir, `${name}.journal.jsonl`);
  if (existsSync(snapshotPath)) {
    let file: { format?: unknown; entries?: unknown };
    try {
      file = JSON.parse(readFileSync(snapshotPath, "utf8")) as typeof file;
    } catch (err) {
      throw new StoreDamagedError(
        snapshotPath,
        `is not valid JSON (${(err as Error).message}); it cannot be imported`,
        "restore it from a backup, or remove the old files to start without them",
      );
    }
    if (file?.format !== "metafora-durable-map" || !file.entries || typeof file.entries !== "object") {
      throw new StoreDamagedError(
        snapshotPath,
        `is not a metafora data file (expected {"format":"metafora-durable-map",...})`,
        "restore it from a backup",
      );
    }
    for (const [k, v] of Object.entries(file.entries as Record<string, unknown>)) data.set(k, v);
  }
  if (!existsSync(journalPath)) return data;
  const lines = readFileSync(journalPath, "utf8").split("\n");
  const tail = lines.pop();
  if (tail)
    log.warn(
      `importing ${journalPath}: dropping an incomplete last line (a write interrupted by a crash; it was never acknowledged)`,
    );
  let bad = 0;
  for (const line of lines) {
    if (line === "") continue;
    let entry: { op?: unknown; k?: unknown; v?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      bad++;
      continue;
    }
    if (entry.op === "set" && typeof entry.k === "string") data.set(entry.k, entry.v);
    else if (entry.op === "del" && typeof entry.k === "string") data.delete(entry.k);
    else bad++;
  }
  if (bad > 0) log.warn(`importing ${journalPath}: skipped ${bad} unreadable line(s)`);
  return data;
}

/** Move the old files into a backup folder; returns its path. */
export function moveJournalAside(dataDir: string, files: readonly string[], now = new Date()): string {
  const backup = join(dataDir, `journal-backup-${now.toISOString().replace(/[:.]/g, "-")}`);
  mkdirSync(backup, { recursive: true });
  for (const f of files) renameSync(join(dataDir, f), join(backup, f));
  return backup;
}
