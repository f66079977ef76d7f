/**
 * Bulk submits as operators make them: a JSON Lines file for the CLI (`submit --file`), and the
 * `{"tasks": [...]}` body of `POST /api/tasks`. Each item is {id, props?, handler?}, checked
 * exactly like a single submit; an error names the line or item and what was expected.
 */
import type { SubmitResult, TaskSubmission } from "../../types.ts";
import { OperatorError } from "./types.ts";
import { checkProps, checkTaskId } from "./validate.ts";

/** Most tasks one HTTP bulk request may carry (the CLI splits bigger files). */
export const MAX_BULK_ITEMS = 10_000;

/** One {id, props?, handler?} item, `where` naming it in errors ("line 3", "tasks[2]"). */
export function checkSubmission(item: unknown, where: string): TaskSubmission {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new OperatorError(
      "invalid",
      `${where}: expected an object {"id": "...", "props"?: {...}, "handler"?: "..."}`,
    );
  }
  const { id, props, handler, ...rest } = item as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new OperatorError(
      "invalid",
      `${where}: unknown field ${JSON.stringify(unknown[0])} (allowed: id, props, handler)`,
    );
  try {
    const taskId = checkTaskId(id);
    const checked = checkProps(props, handler);
    return checked === undefined ? { id: taskId } : { id: taskId, props: checked };
  } catch (err) {
    if (err instanceof OperatorError) throw new OperatorError(err.kind, `${where}: ${err.message}`);
    throw err;
  }
}

/** A list of items; duplicates are refused (naming both places) so results map one to one. */
export function checkSubmissions(items: readonly unknown[], where: (index: number) => string): TaskSubmission[] {
  const first = new Map<string, number>();
  return items.map((item, i) => {
    const s = checkSubmission(item, where(i));
    const seen = first.get(s.id);
    if (seen !== undefined)
      throw new OperatorError("invalid", `${where(i)}: task id ${JSON.stringify(s.id)} also appears at ${where(seen)}`);
    first.set(s.id, i);
    return s;
  });
}

/** Parse JSON Lines: one object per line, blank lines skipped; `name` is the file in errors. */
export function parseTaskLines(text: string, name: string): TaskSubmission[] {
  const items: unknown[] = [];
  const lines: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      items.push(JSON.parse(line));
    } catch (err) {
      throw new OperatorError(
        "invalid",
        `${name} line ${i + 1}: not JSON (${(err as Error).message}); expected one {"id": ...} object per line`,
      );
    }
    lines.push(i + 1);
  });
  return checkSubmissions(items, (index) => `${name} line ${lines[index]}`);
}

/** Counts for messages: how many were created and how many existed already. */
export function countResults(results: readonly SubmitResult[]): { created: number; exists: number } {
  let created = 0;
  for (const r of results) if (r.result === "created") created++;
  return { created, exists: results.length - created };
}
