/** The prepared statements of the embedded store (tables: schema.ts). */
import type { DatabaseSync, StatementSync } from "node:sqlite";

export type StoreStatements = ReturnType<typeof prepareStatements>;

/** Prepared once per open, after the schema is migrated. */
export function prepareStatements(db: DatabaseSync) {
  return {
    putTask: db.prepare("INSERT OR REPLACE INTO tasks (id, props, sum) VALUES (?, ?, ?)"),
    delTask: db.prepare("DELETE FROM tasks WHERE id = ?"),
    putState: db.prepare("INSERT OR REPLACE INTO states (task_id, state, sum) VALUES (?, ?, ?)"),
    delState: db.prepare("DELETE FROM states WHERE task_id = ?"),
    putCommand: db.prepare("INSERT OR REPLACE INTO commands (task_id, message, sum) VALUES (?, ?, ?)"),
    delCommand: db.prepare("DELETE FROM commands WHERE task_id = ?"),
    putCheckpoint: db.prepare(
      "INSERT OR REPLACE INTO checkpoints (task_id, value, token, at, sum) VALUES (?, ?, ?, ?, ?)",
    ),
    getCheckpoint: db.prepare("SELECT value, token, at, sum FROM checkpoints WHERE task_id = ?"),
    delCheckpoint: db.prepare("DELETE FROM checkpoints WHERE task_id = ?"),
    checkpointInfos: db.prepare("SELECT task_id, length(CAST(value AS BLOB)) AS bytes, at FROM checkpoints"),
    getMeta: db.prepare("SELECT value FROM meta WHERE key = ?"),
    putMeta: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
    addHistory: db.prepare("INSERT INTO history (task_id, event) VALUES (?, ?)"),
    trimHistory: db.prepare(
      "DELETE FROM history WHERE task_id = ? AND seq <= (SELECT seq FROM history WHERE task_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    ),
    getHistory: db.prepare("SELECT event FROM history WHERE task_id = ? ORDER BY seq"),
    getStats: db.prepare("SELECT attempts, errors, last_error FROM task_stats WHERE task_id = ?"),
    putStats: db.prepare(
      "INSERT OR REPLACE INTO task_stats (task_id, attempts, errors, last_error) VALUES (?, ?, ?, ?)",
    ),
    allStats: db.prepare("SELECT task_id, attempts, errors, last_error FROM task_stats"),
  } satisfies Record<string, StatementSync>;
}
