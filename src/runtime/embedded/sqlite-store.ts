/**
 * The embedded coordinator's data in one SQLite database, `<data_dir>/metafora.db`, through
 * `node:sqlite` (built into Bun, also inside the compiled binary, and Deno): tasks, the state
 * machine's states, task commands no handler has taken yet, the fencing-token ceiling,
 * checkpoints and per-task history.
 *
 * Durability: journal_mode=WAL with synchronous=FULL. In WAL mode NORMAL only syncs at
 * checkpoints, so a power cut could undo commits a caller was already told about; FULL syncs
 * the WAL at every commit, so every acknowledged change is on disk before the answer. What
 * that costs is paid once per transaction, not once per write: concurrent writes share one
 * commit (group-commit.ts).
 *
 * Damage is never silent. At open: the marker (marker.ts) says whether a database is expected
 * and whether the last node closed it cleanly; the WAL is read before SQLite replays it
 * (wal-check.ts); `PRAGMA integrity_check` (quick_check above QUICK_CHECK_ABOVE bytes) checks
 * the pages; and every row is checked against its checksum as it is loaded. Anything wrong
 * refuses the start with a StoreDamagedError (exit 78) naming the file and what to do.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Logger, TaskProps } from "../../types.ts";
import {
  clipMessage,
  HISTORY_LIMIT,
  nextSummary,
  type HistoryEvent,
  type TaskSummary,
} from "../history/task-history.ts";
import { GroupCommit } from "./group-commit.ts";
import { readMarker, writeMarker, type StoreMarker } from "./marker.ts";
import { migrate, rowSum } from "./schema.ts";
import { prepareStatements, type StoreStatements } from "./statements.ts";
import { checkRows, exportRows } from "./store-tools.ts";
import { StoreDamagedError } from "./store-errors.ts";
import type { CheckpointRecord, StoredTask } from "./store-types.ts";
import { checkWal } from "./wal-check.ts";

export const DATABASE_FILE = "metafora.db";
/**
 * integrity_check reads every page and cross-checks every index; quick_check skips the index
 * cross-check and is about 3× faster (bench/embedded-store.ts: 144 ms vs 46 ms for 100,000
 * tasks, 10 MiB). Above 64 MiB (~1 s of integrity_check) the start uses quick_check; row
 * checksums catch value damage either way, and `metafora store check` always runs the full one.
 */
export const QUICK_CHECK_ABOVE = 64 * 1024 * 1024;

export type { CheckpointRecord, StoredTask } from "./store-types.ts";

export interface StoreOpenOptions {
  /** Read only and without the open/closed bookkeeping (store check, store export). */
  readOnly?: boolean;
  /**
   * Salvage mode (store check, store export): read only, and open whatever is there without
   * refusing on damage, so what is readable can be reported or exported.
   */
  salvage?: boolean;
  /** Create the database when the data dir has none (default true; false for check/export). */
  create?: boolean;
  /** Called once, inside the creating transaction, to fill a new database (journal import). */
  seed?(store: EmbeddedStore): void;
}

export class EmbeddedStore {
  readonly file: string;
  readonly writes: GroupCommit;
  /** True when this open created the database. */
  readonly created: boolean;
  private readonly db: DatabaseSync;
  private stmt!: StoreStatements;
  private marker: StoreMarker | undefined;
  private closed = false;

  private constructor(
    readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: StoreOpenOptions,
  ) {
    this.file = join(dataDir, DATABASE_FILE);
    const walFile = `${this.file}-wal`;
    const marker = opts.salvage ? undefined : readMarker(dataDir);
    const exists = existsSync(this.file);
    if (!exists && marker) {
      throw new StoreDamagedError(
        this.file,
        `is missing, but this data dir had a database (store ${marker.id}, created ${marker.createdAt}, recorded in ${join(dataDir, "store.json")})`,
        `restore ${this.file} from a backup; to start empty on purpose, remove ${join(dataDir, "store.json")}`,
      );
    }
    if (!exists && opts.create === false)
      throw new StoreDamagedError(this.file, "does not exist", "is data_dir (METAFORA_DATA_DIR) the right folder?");
    if (exists && statSync(this.file).size === 0 && marker) {
      throw new StoreDamagedError(this.file, "is empty (0 bytes) but this data dir had a database");
    }
    if (exists && !opts.salvage) this.checkWalBeforeOpen(walFile, marker);
    this.created = !exists;
    try {
      this.db = new DatabaseSync(this.file, opts.readOnly ? { readOnly: true } : {});
    } catch (err) {
      throw new StoreDamagedError(this.file, `cannot be opened (${(err as Error).message})`);
    }
    try {
      if (!opts.salvage) this.setUp(marker);
    } catch (err) {
      this.db.close();
      if (err instanceof StoreDamagedError) throw err;
      throw new StoreDamagedError(this.file, `is not a readable metafora database (${(err as Error).message})`);
    }
    this.writes = new GroupCommit(this.db);
  }

  static open(dataDir: string, log: Logger, opts: StoreOpenOptions = {}): EmbeddedStore {
    if (!opts.salvage && opts.create !== false) mkdirSync(dataDir, { recursive: true });
    return new EmbeddedStore(dataDir, log, opts.salvage ? { ...opts, readOnly: true, create: false } : opts);
  }

  private checkWalBeforeOpen(walFile: string, marker: StoreMarker | undefined): void {
    const wal = checkWal(walFile);
    if (wal.kind === "absent") {
      // A node that crashed leaves its WAL behind, with commits not yet copied into the main file.
      if (marker?.open) {
        throw new StoreDamagedError(
          walFile,
          "is missing, but the last node did not close the database cleanly: its write-ahead log held acknowledged changes",
          `restore ${walFile} (and ${this.file}) from a backup or the original disk; \`metafora store export\` shows what the main file alone holds`,
        );
      }
      return;
    }
    if (wal.kind === "damaged") throw new StoreDamagedError(walFile, wal.problem);
    if (wal.kind === "torn-tail") {
      this.log.warn(
        `${walFile}: the log ends with ${wal.ignoredBytes} byte(s) of incomplete frames after ${wal.validFrames} valid one(s), which SQLite ignores; that is a write interrupted by a crash (never acknowledged) unless the file was damaged there`,
      );
    }
  }

  private setUp(marker: StoreMarker | undefined): void {
    const db = this.db;
    db.exec("PRAGMA busy_timeout = 5000");
    if (!this.opts.readOnly) {
      const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
      if (mode.toLowerCase() !== "wal") throw new Error(`could not switch to WAL (journal_mode is ${mode})`);
      db.exec("PRAGMA synchronous = FULL");
    }
    this.integrityCheck();
    if (!this.opts.readOnly) migrate(db, this.file);
    else if (this.created) throw new Error("no database");
    this.stmt = prepareStatements(db);
    let id = this.meta("store_id");
    // No id and no marker: a creation interrupted before its first commit; finish it.
    const fresh = this.created || (id === undefined && !marker);
    if (fresh && !this.opts.readOnly) {
      id = randomUUID();
      db.exec("BEGIN IMMEDIATE");
      try {
        this.setMeta("store_id", id);
        this.setMeta("created_at", new Date().toISOString());
        this.opts.seed?.(this);
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw err;
      }
    }
    if (id === undefined)
      throw new StoreDamagedError(this.file, "has no store id: it is not a database metafora created");
    if (marker && marker.id !== id) {
      throw new StoreDamagedError(
        this.file,
        `is store ${id}, but this data dir's ${join(this.dataDir, "store.json")} expects store ${marker.id}`,
        `put the right database back; if this one is meant to replace it, remove ${join(this.dataDir, "store.json")}`,
      );
    }
    if (!marker && !this.created)
      this.log.warn(`${join(this.dataDir, "store.json")} was missing; recreated it for store ${id}`);
    if (!this.opts.readOnly) {
      this.marker = {
        format: "metafora-store",
        database: "metafora.db",
        id,
        createdAt: marker?.createdAt ?? this.meta("created_at") ?? new Date().toISOString(),
        open: true,
      };
      writeMarker(this.dataDir, this.marker);
    }
  }

  /** Problems SQLite finds in the pages; throws when there are any. */
  private integrityCheck(): void {
    const problems = this.pageProblems();
    if (problems.length > 0)
      throw new StoreDamagedError(
        this.file,
        `fails SQLite's integrity check: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ""}`,
      );
  }

  pageProblems(full = false): string[] {
    const size = statSync(this.file).size;
    const pragma = !full && size > QUICK_CHECK_ABOVE ? "quick_check" : "integrity_check";
    const rows = this.db.prepare(`PRAGMA ${pragma}(20)`).all() as Array<Record<string, unknown>>;
    const messages = rows.map((r) => String(Object.values(r)[0]));
    return messages.length === 1 && messages[0] === "ok" ? [] : messages;
  }

  // ---- reads at start-up (each row checked against its checksum) ----

  tasks(): StoredTask[] {
    const rows = this.db.prepare("SELECT id, props, sum FROM tasks").all() as Array<{
      id: string;
      props: string;
      sum: number;
    }>;
    return rows.map((r) => ({
      id: r.id,
      props: this.parseRow<TaskProps>("tasks", r.id, r.props, r.sum, rowSum(r.id, r.props)),
    }));
  }

  /** Task id → the state's JSON text (etcd's `state/T` value). */
  states(): Array<[string, string]> {
    const rows = this.db.prepare("SELECT task_id, state, sum FROM states").all() as Array<{
      task_id: string;
      state: string;
      sum: number;
    }>;
    return rows.map((r) => {
      this.verify("states", r.task_id, r.sum, rowSum(r.task_id, r.state));
      return [r.task_id, r.state];
    });
  }

  /** Task id → the waiting command's JSON text. */
  commands(): Array<[string, string]> {
    const rows = this.db.prepare("SELECT task_id, message, sum FROM commands").all() as Array<{
      task_id: string;
      message: string;
      sum: number;
    }>;
    return rows.map((r) => {
      this.verify("commands", r.task_id, r.sum, rowSum(r.task_id, r.message));
      return [r.task_id, r.message];
    });
  }

  meta(key: string): string | undefined {
    const row = this.stmt.getMeta.get(key) as { value: string } | undefined;
    return row?.value;
  }

  /** Every fencing token handed out before this open is at or below this. */
  tokenCeiling(): number {
    const n = Number(this.meta("token_ceiling") ?? 0);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  }

  // ---- writes: each resolves once its group's commit is on disk ----

  putTask(id: string, props: TaskProps): Promise<void> {
    const text = JSON.stringify(props);
    return this.writes.run(() => this.putTaskNow(id, text));
  }

  /** Inside a transaction already open (seed, import). */
  putTaskNow(id: string, propsText: string): void {
    this.stmt.putTask.run(id, propsText, rowSum(id, propsText));
  }

  /** The task goes, and with it its waiting command and checkpoint. Its state and history stay. */
  removeTask(id: string): Promise<void> {
    return this.writes.run(() => {
      this.stmt.delTask.run(id);
      this.stmt.delCommand.run(id);
      this.stmt.delCheckpoint.run(id);
    });
  }

  putState(taskId: string, stateText: string): Promise<void> {
    return this.writes.run(() => this.putStateNow(taskId, stateText));
  }

  /** An operator's `state reset`: the stored state goes; on disk when it resolves. */
  deleteState(taskId: string): Promise<void> {
    return this.writes.run(() => {
      this.stmt.delState.run(taskId);
    });
  }

  putStateNow(taskId: string, stateText: string): void {
    this.stmt.putState.run(taskId, stateText, rowSum(taskId, stateText));
  }

  /** A waiting command (its JSON text), or undefined when the slot emptied. */
  putCommand(taskId: string, messageText: string | undefined): Promise<void> {
    return this.writes.run(() =>
      messageText === undefined ? this.stmt.delCommand.run(taskId) : this.putCommandNow(taskId, messageText),
    );
  }

  putCommandNow(taskId: string, messageText: string): void {
    this.stmt.putCommand.run(taskId, messageText, rowSum(taskId, messageText));
  }

  setTokenCeiling(ceiling: number): Promise<void> {
    return this.writes.run(() => this.setMeta("token_ceiling", String(ceiling)));
  }

  setMeta(key: string, value: string): void {
    this.stmt.putMeta.run(key, value);
  }

  // ---- checkpoints: the caller fences them; the store keeps the latest per task ----

  /** Store a task's latest checkpoint (value as JSON text); durable once resolved. */
  putCheckpoint(taskId: string, checkpoint: CheckpointRecord): Promise<void> {
    const { value, token, at } = checkpoint;
    if (typeof value !== "string")
      return Promise.reject(new TypeError(`checkpoint of task "${taskId}": value must be JSON text`));
    return this.writes.run(() =>
      this.stmt.putCheckpoint.run(taskId, value, token, at, rowSum(taskId, value, token, at)),
    );
  }

  getCheckpoint(taskId: string): CheckpointRecord | undefined {
    const row = this.stmt.getCheckpoint.get(taskId) as
      | { value: string; token: number; at: string; sum: number }
      | undefined;
    if (!row) return undefined;
    this.verify("checkpoints", taskId, row.sum, rowSum(taskId, row.value, Number(row.token), row.at));
    return { value: row.value, token: Number(row.token), at: row.at };
  }

  /** Task id → the latest checkpoint's JSON text, for restoring the broker at start. */
  checkpoints(): Array<[string, string]> {
    const rows = this.db.prepare("SELECT task_id, value, token, at, sum FROM checkpoints").all() as Array<{
      task_id: string;
      value: string;
      token: number;
      at: string;
      sum: number;
    }>;
    return rows.map((r) => {
      this.verify("checkpoints", r.task_id, r.sum, rowSum(r.task_id, r.value, Number(r.token), r.at));
      return [r.task_id, r.value];
    });
  }

  /** Size (bytes of JSON text) and time of every stored checkpoint. */
  checkpointInfos(): Map<string, { bytes: number; at: string }> {
    const rows = this.stmt.checkpointInfos.all() as Array<{ task_id: string; bytes: number; at: string }>;
    return new Map(rows.map((r) => [r.task_id, { bytes: Number(r.bytes), at: r.at }]));
  }

  // ---- history ----

  /** Append an event (bounded to HISTORY_LIMIT per task) and update the task's counters. */
  addHistory(taskId: string, event: HistoryEvent): Promise<void> {
    const stored: HistoryEvent =
      event.message === undefined ? event : { ...event, message: clipMessage(event.message) };
    return this.writes.run(() => {
      this.stmt.addHistory.run(taskId, JSON.stringify(stored));
      this.stmt.trimHistory.run(taskId, taskId, HISTORY_LIMIT);
      if (stored.kind === "claimed" || stored.kind === "error") {
        const next = nextSummary(this.summary(taskId), stored);
        this.stmt.putStats.run(
          taskId,
          next.attempts,
          next.errors,
          next.lastError ? JSON.stringify(next.lastError) : null,
        );
      }
    });
  }

  history(taskId: string): HistoryEvent[] {
    return (this.stmt.getHistory.all(taskId) as Array<{ event: string }>).flatMap((r) => {
      try {
        return [JSON.parse(r.event) as HistoryEvent];
      } catch {
        return []; // history is informative: an unreadable event is skipped, not fatal
      }
    });
  }

  summary(taskId: string): TaskSummary | undefined {
    const row = this.stmt.getStats.get(taskId) as
      | { attempts: number; errors: number; last_error: string | null }
      | undefined;
    return row ? toSummary(row) : undefined;
  }

  summaries(): Map<string, TaskSummary> {
    const rows = this.stmt.allStats.all() as Array<{
      task_id: string;
      attempts: number;
      errors: number;
      last_error: string | null;
    }>;
    return new Map(rows.map((r) => [r.task_id, toSummary(r)]));
  }

  /**
   * History and counters of tasks that are gone, beyond the `keep` most recently active ones
   * (a node that runs many short tasks would otherwise keep every one of them forever).
   */
  pruneGoneHistory(keep = 1000): Promise<void> {
    return this.writes.run(() => {
      const gone = `SELECT task_id FROM history h WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = h.task_id) GROUP BY task_id ORDER BY MAX(seq) DESC LIMIT -1 OFFSET ${Math.max(0, Math.floor(keep))}`;
      this.db.exec(
        `CREATE TEMP TABLE IF NOT EXISTS gone_ids (id TEXT PRIMARY KEY); DELETE FROM gone_ids; INSERT INTO gone_ids ${gone};`,
      );
      this.db.exec(
        "DELETE FROM history WHERE task_id IN (SELECT id FROM gone_ids); DELETE FROM task_stats WHERE task_id IN (SELECT id FROM gone_ids); DELETE FROM gone_ids;",
      );
    });
  }

  // ---- operator tools ----

  /** Every problem found: pages, and rows whose checksum or JSON does not match. */
  check(): string[] {
    return [...this.pageProblems(true).map((p) => `sqlite: ${p}`), ...checkRows(this.db)];
  }

  /**
   * JSON lines of what is readable, one object per row: {"type":"task",id,props},
   * {"type":"state",id,state}, {"type":"command",id,message}, {"type":"checkpoint",id,value,
   * token,at}; a row that fails its checksum is still written, marked "damaged": true, so an
   * operator decides. Returns the number of rows written.
   */
  export(write: (line: string) => void): number {
    return exportRows(this.db, write);
  }

  /** Run `fn` in one transaction now (import, seeding). */
  transaction(fn: () => void): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }

  /**
   * Commit what is queued, copy the WAL into the main file and empty it, then mark the data
   * dir closed cleanly: a WAL missing after that loses nothing.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writes.close();
    if (!this.opts.readOnly) {
      try {
        this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        if (this.marker) writeMarker(this.dataDir, { ...this.marker, open: false });
      } catch (err) {
        this.log.warn(`closing ${this.file}: ${(err as Error).message}; the next start replays its WAL`);
      }
    }
    this.db.close();
  }

  private verify(table: string, key: string, stored: number, actual: number): void {
    if (Number(stored) !== actual) {
      throw new StoreDamagedError(
        this.file,
        `row ${JSON.stringify(key)} of table ${table} does not match its checksum (damaged bytes)`,
      );
    }
  }

  private parseRow<T>(table: string, key: string, text: string, stored: number, actual: number): T {
    this.verify(table, key, stored, actual);
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StoreDamagedError(
        this.file,
        `row ${JSON.stringify(key)} of table ${table} is not JSON (${(err as Error).message})`,
      );
    }
  }
}

function toSummary(row: { attempts: number; errors: number; last_error: string | null }): TaskSummary {
  let lastError: TaskSummary["lastError"];
  if (row.last_error) {
    try {
      lastError = JSON.parse(row.last_error) as TaskSummary["lastError"];
    } catch {
      lastError = undefined;
    }
  }
  return { attempts: Number(row.attempts), errors: Number(row.errors), ...(lastError ? { lastError } : {}) };
}
