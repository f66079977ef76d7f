/**
 * The operator tools over an embedded store's database (`metafora store check`, `store export`):
 * they read the tables directly, row by row, so they work on a damaged database opened for
 * salvage too, where the store's prepared statements are never made.
 */
import type { DatabaseSync } from "node:sqlite";
import { rowSum } from "./schema.ts";

/** Rows whose checksum does not match, and tables that cannot be read (the pages: pageProblems). */
export function checkRows(db: DatabaseSync): string[] {
  const problems: string[] = [];
  const tables: Array<[string, string, (r: Record<string, unknown>) => number]> = [
    ["tasks", "SELECT id AS k, props, sum FROM tasks", (r) => rowSum(String(r.k), String(r.props))],
    ["states", "SELECT task_id AS k, state, sum FROM states", (r) => rowSum(String(r.k), String(r.state))],
    ["commands", "SELECT task_id AS k, message, sum FROM commands", (r) => rowSum(String(r.k), String(r.message))],
    [
      "checkpoints",
      "SELECT task_id AS k, value, token, at, sum FROM checkpoints",
      (r) => rowSum(String(r.k), String(r.value), Number(r.token), String(r.at)),
    ],
  ];
  for (const [table, sql, sum] of tables) {
    try {
      for (const r of db.prepare(sql).iterate() as Iterable<Record<string, unknown>>) {
        if (Number(r.sum) !== sum(r))
          problems.push(`${table}: row ${JSON.stringify(r.k)} does not match its checksum (damaged bytes)`);
      }
    } catch (err) {
      problems.push(`${table}: unreadable (${(err as Error).message})`);
    }
  }
  return problems;
}

/** JSON lines of every readable row (the format: EmbeddedStore.export). Returns the row count. */
export function exportRows(db: DatabaseSync, write: (line: string) => void): number {
  let n = 0;
  const out = (obj: Record<string, unknown>): void => {
    write(`${JSON.stringify(obj)}\n`);
    n++;
  };
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };
  const each = (sql: string, fn: (r: Record<string, unknown>) => void): void => {
    try {
      for (const r of db.prepare(sql).iterate() as Iterable<Record<string, unknown>>) fn(r);
    } catch (err) {
      out({ type: "error", message: `${sql.split(" FROM ")[1]?.split(" ")[0] ?? "?"}: ${(err as Error).message}` });
    }
  };
  const damaged = (ok: boolean): Record<string, unknown> => (ok ? {} : { damaged: true });
  each("SELECT id, props, sum FROM tasks ORDER BY id", (r) =>
    out({
      type: "task",
      id: r.id,
      props: parse(String(r.props)),
      ...damaged(Number(r.sum) === rowSum(String(r.id), String(r.props))),
    }),
  );
  each("SELECT task_id, state, sum FROM states ORDER BY task_id", (r) =>
    out({
      type: "state",
      id: r.task_id,
      state: parse(String(r.state)),
      ...damaged(Number(r.sum) === rowSum(String(r.task_id), String(r.state))),
    }),
  );
  each("SELECT task_id, message, sum FROM commands ORDER BY task_id", (r) =>
    out({
      type: "command",
      id: r.task_id,
      message: parse(String(r.message)),
      ...damaged(Number(r.sum) === rowSum(String(r.task_id), String(r.message))),
    }),
  );
  each("SELECT task_id, value, token, at, sum FROM checkpoints ORDER BY task_id", (r) =>
    out({
      type: "checkpoint",
      id: r.task_id,
      value: parse(String(r.value)),
      token: Number(r.token),
      at: r.at,
      ...damaged(Number(r.sum) === rowSum(String(r.task_id), String(r.value), Number(r.token), String(r.at))),
    }),
  );
  return n;
}
