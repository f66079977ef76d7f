/**
 * Shared parts of bulk submits (Client.submitTasks): checking the whole list before anything is
 * written, and the one-task-at-a-time form for clients whose single submit is already cheap.
 */
import { describeError, TaskExistsError } from "./errors.ts";
import { invalidTaskId } from "./ids.ts";
import type { SubmitResult, TaskProps } from "./types.ts";

/** A checked submission: props always present (a plain object). */
export interface CheckedSubmission {
  readonly id: string;
  readonly props: TaskProps;
}

/**
 * Check every item of a bulk submit, so a bad item fails the call before any task is created.
 * `invalidId` returns why an id cannot be used, or undefined (default: the one rule of ids.ts).
 */
export function checkSubmissions(
  tasks: unknown,
  invalidId: (id: unknown) => string | undefined = invalidTaskId,
): CheckedSubmission[] {
  if (!Array.isArray(tasks))
    throw new TypeError(`submitTasks expects an array of {id, props?}, got ${describeError(tasks)}`);
  const seen = new Map<string, number>();
  const out: CheckedSubmission[] = [];
  tasks.forEach((item: unknown, index) => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      throw new TypeError(
        `task ${index + 1} of the bulk submit must be an object {id, props?}, got ${describeError(item)}`,
      );
    }
    const { id, props } = item as { id?: unknown; props?: unknown };
    const reason = invalidId(id);
    if (reason) throw new TypeError(`task ${index + 1} of the bulk submit: ${reason}`);
    const taskId = id as string;
    const first = seen.get(taskId);
    if (first !== undefined)
      throw new TypeError(
        `task id ${JSON.stringify(taskId)} appears twice in the bulk submit (tasks ${first + 1} and ${index + 1})`,
      );
    seen.set(taskId, index);
    if (props !== undefined && (props === null || typeof props !== "object" || Array.isArray(props))) {
      throw new TypeError(
        `props of task ${JSON.stringify(taskId)} (task ${index + 1} of the bulk submit) must be a plain object, got ${Array.isArray(props) ? "an array" : describeError(props)}`,
      );
    }
    out.push({ id: taskId, props: (props ?? {}) as TaskProps });
  });
  return out;
}

/** Submit checked tasks one by one through `submit`; an id that is taken becomes "exists". */
export async function submitOneByOne(
  tasks: readonly CheckedSubmission[],
  submit: (id: string, props: TaskProps) => Promise<void>,
): Promise<SubmitResult[]> {
  const results: SubmitResult[] = [];
  for (const t of tasks) {
    try {
      await submit(t.id, t.props);
      results.push({ id: t.id, result: "created" });
    } catch (err) {
      if (!(err instanceof TaskExistsError)) throw err;
      results.push({ id: t.id, result: "exists" });
    }
  }
  return results;
}
