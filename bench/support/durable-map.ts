/**
 * The embedded coordinator's former store, kept as the baseline of bench/embedded-store.ts: a
 * string-keyed map of JSON values that survives kill -9 and power loss (the coordinator now
 * uses SQLite, see docs/embedded-store.md; journal-import.ts reads this format once).
 *
 * On disk: `<name>.snapshot.json` (the whole map, replaced atomically: write a temp file,
 * fsync, rename, fsync the folder) plus `<name>.journal.jsonl` (one line per change since the
 * snapshot, appended and fdatasync'ed before set()/delete() return). Whatever a caller was
 * told is stored is therefore on disk; a crash can only tear the line being written, which
 * was never acknowledged and is dropped on the next open. Opening compacts: it writes a fresh
 * snapshot and empties the journal, so a torn tail is never appended to. The journal is
 * compacted again once it outgrows the map, keeping restarts fast.
 *
 * Writes are synchronous on purpose: durability before acknowledgement is the point, and a
 * journal append is one small write plus one fdatasync.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
} from "node:fs";
import { join } from "node:path";
import { writeAll, writeFileAtomic } from "../../src/runtime/embedded/atomic-file.ts";
import type { Logger } from "../../src/types.ts";

type Entry = { op: "set"; k: string; v: unknown } | { op: "del"; k: string };

interface SnapshotFile {
  format: "metafora-durable-map";
  version: 1;
  entries: Record<string, unknown>;
}

export interface DurableMapOptions {
  /** Compact when the journal holds more than max(minCompact, 2 × size) lines. Default 1000. */
  minCompact?: number;
  /** Skip fsync/fdatasync (benchmarks comparing the cost only). Default false. */
  unsafeNoSync?: boolean;
}

export class DurableMap<V = unknown> {
  private readonly data = new Map<string, V>();
  private readonly snapshotPath: string;
  private readonly journalPath: string;
  private journalFd: number | undefined;
  private journalLines = 0;
  private readonly minCompact: number;
  private readonly sync: boolean;

  private constructor(
    private readonly dir: string,
    name: string,
    private readonly log: Logger,
    opts: DurableMapOptions,
  ) {
    this.snapshotPath = join(dir, `${name}.snapshot.json`);
    this.journalPath = join(dir, `${name}.journal.jsonl`);
    this.minCompact = opts.minCompact ?? 1000;
    this.sync = !opts.unsafeNoSync;
  }

  /** Load `<dir>/<name>.*` (creating the folder if needed), then compact. */
  static open<V = unknown>(dir: string, name: string, log: Logger, opts: DurableMapOptions = {}): DurableMap<V> {
    mkdirSync(dir, { recursive: true });
    const map = new DurableMap<V>(dir, name, log, opts);
    map.load();
    map.compact();
    return map;
  }

  get size(): number {
    return this.data.size;
  }

  has(key: string): boolean {
    return this.data.has(key);
  }

  get(key: string): V | undefined {
    return this.data.get(key);
  }

  entries(): IterableIterator<[string, V]> {
    return this.data.entries();
  }

  /** Store durably; returns once the change is on disk. */
  set(key: string, value: V): void {
    this.append({ op: "set", k: key, v: value });
    this.data.set(key, value);
    this.maybeCompact();
  }

  /** Remove durably; returns whether the key existed. */
  delete(key: string): boolean {
    if (!this.data.has(key)) return false;
    this.append({ op: "del", k: key });
    this.data.delete(key);
    this.maybeCompact();
    return true;
  }

  close(): void {
    if (this.journalFd !== undefined) {
      closeSync(this.journalFd);
      this.journalFd = undefined;
    }
  }

  /** Rewrite the snapshot from memory and empty the journal. */
  compact(): void {
    const snapshot: SnapshotFile = {
      format: "metafora-durable-map",
      version: 1,
      entries: Object.fromEntries(this.data),
    };
    writeFileAtomic(this.snapshotPath, JSON.stringify(snapshot), this.sync);
    // The snapshot now holds everything the journal said; replaying the journal over it would
    // be harmless (each line sets or deletes one key to its final value), so a crash between
    // the rename and this truncate loses nothing either.
    if (this.journalFd === undefined) this.journalFd = openSync(this.journalPath, "a");
    ftruncateSync(this.journalFd, 0);
    if (this.sync) fsyncSync(this.journalFd);
    this.journalLines = 0;
  }

  private append(entry: Entry): void {
    if (this.journalFd === undefined) throw new Error(`durable map ${this.journalPath} is closed`);
    writeAll(this.journalFd, `${JSON.stringify(entry)}\n`);
    if (this.sync) fdatasyncSync(this.journalFd);
    this.journalLines++;
  }

  private maybeCompact(): void {
    if (this.journalLines > Math.max(this.minCompact, 2 * this.data.size)) this.compact();
  }

  private load(): void {
    if (existsSync(this.snapshotPath)) {
      const text = readFileSync(this.snapshotPath, "utf8");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        // The snapshot is only ever replaced by rename, so this is damage from outside.
        throw new Error(
          `${this.snapshotPath} is not valid JSON (${(err as Error).message}); restore it from a backup or remove it to start empty`,
        );
      }
      const file = parsed as Partial<SnapshotFile>;
      if (file?.format !== "metafora-durable-map" || !file.entries || typeof file.entries !== "object") {
        throw new Error(
          `${this.snapshotPath} is not a metafora data file; expected {"format":"metafora-durable-map",...}`,
        );
      }
      for (const [k, v] of Object.entries(file.entries)) this.data.set(k, v as V);
    }
    if (!existsSync(this.journalPath)) return;
    const lines = readFileSync(this.journalPath, "utf8").split("\n");
    // The last element is "" after a complete final line, or a torn line after a crash.
    const tail = lines.pop();
    if (tail)
      this.log.warn(
        `dropping an incomplete last line of ${this.journalPath} (a write interrupted by a crash; it was never acknowledged)`,
      );
    let bad = 0;
    for (const line of lines) {
      if (line === "") continue;
      let entry: Entry;
      try {
        entry = JSON.parse(line) as Entry;
      } catch {
        bad++;
        continue;
      }
      if (entry.op === "set" && typeof entry.k === "string") this.data.set(entry.k, entry.v as V);
      else if (entry.op === "del" && typeof entry.k === "string") this.data.delete(entry.k);
      else bad++;
    }
    if (bad > 0) this.log.warn(`skipped ${bad} unreadable line(s) in ${this.journalPath}`);
  }

  /** Folder holding the files (for messages). */
  get folder(): string {
    return this.dir;
  }
}
