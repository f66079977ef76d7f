/**
 * The embedded store's schema, versioned with SQLite's `PRAGMA user_version`. Each migration
 * takes the database from version i to i + 1 and runs in one transaction with the version
 * bump, so a crash mid-migration leaves the old version intact. A database from a newer
 * metafora (higher version than we know) is refused rather than guessed at.
 *
 * Every row that holds operator data carries `sum`, a checksum of its content (rowSum):
 * SQLite checks its page structure but not the bytes of a value, so a flipped byte inside a
 * task id or props would otherwise go unnoticed.
 */
import type { DatabaseSync } from "node:sqlite";

const MIGRATIONS: readonly string[] = [
  // 1: tasks, states, waiting commands, meta, checkpoints, history.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE tasks (id TEXT PRIMARY KEY, props TEXT NOT NULL, sum INTEGER NOT NULL);
  CREATE TABLE states (task_id TEXT PRIMARY KEY, state TEXT NOT NULL, sum INTEGER NOT NULL);
  CREATE TABLE commands (task_id TEXT PRIMARY KEY, message TEXT NOT NULL, sum INTEGER NOT NULL);
  CREATE TABLE checkpoints (task_id TEXT PRIMARY KEY, value TEXT NOT NULL, token INTEGER NOT NULL, at TEXT NOT NULL, sum INTEGER NOT NULL);
  CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, event TEXT NOT NULL);
  CREATE INDEX history_by_task ON history (task_id, seq);
  CREATE TABLE task_stats (task_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL, errors INTEGER NOT NULL, last_error TEXT);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Bring the database to SCHEMA_VERSION; returns the version it had. */
export function migrate(db: DatabaseSync, file: string): number {
  const from = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  if (from > SCHEMA_VERSION) {
    throw new Error(
      `${file} has schema version ${from}, newer than this metafora knows (${SCHEMA_VERSION}); run the metafora version that wrote it`,
    );
  }
  for (let v = from; v < SCHEMA_VERSION; v++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  }
  return from;
}

/** FNV-1a (32 bit) over the UTF-16 code units of the parts, separated by NUL. */
export function rowSum(...parts: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5;
  for (let p = 0; p < parts.length; p++) {
    const s = String(parts[p]);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
