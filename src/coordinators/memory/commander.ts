/**
 * In-memory task commands for the embedded coordinator: the same single-slot semantics as
 * etcd's `tasks/T/commands` (ref §2.12). A command waits in the task's slot (a newer one
 * overwrites it) until the task's running instance takes it; only the most recently started
 * listener of a task takes commands, which is the current owner's.
 */
import { messageProblem } from "../../statemachine/messages.ts";
import type { Message, TaskCommander, TaskCommandSource } from "../../statemachine/types.ts";

interface Listener {
  wake(): void;
}

export class MemoryTaskCommands implements TaskCommander, TaskCommandSource {
  private readonly slots = new Map<string, Message>();
  private readonly listeners = new Map<string, Listener[]>();

  async send(taskId: string, message: Message): Promise<void> {
    const problem = messageProblem(message);
    if (problem !== undefined) throw new TypeError(`command for task "${taskId}" is invalid: ${problem}`);
    this.slots.set(taskId, message);
    const current = this.listeners.get(taskId)?.at(-1);
    current?.wake();
  }

  /** The command waiting for a task, if any (for operators and tests). */
  pending(taskId: string): Message | undefined {
    return this.slots.get(taskId);
  }

  async *listen(taskId: string, signal: AbortSignal): AsyncIterable<Message> {
    let wake: () => void = () => {};
    const me: Listener = { wake: () => wake() };
    const list = this.listeners.get(taskId) ?? [];
    list.push(me);
    this.listeners.set(taskId, list);
    try {
      while (!signal.aborted) {
        const message = this.listeners.get(taskId)?.at(-1) === me ? this.slots.get(taskId) : undefined;
        if (message !== undefined) {
          this.slots.delete(taskId);
          yield message;
          continue;
        }
        await new Promise<void>((resolve) => {
          const done = (): void => {
            signal.removeEventListener("abort", done);
            wake = () => {};
            resolve();
          };
          wake = done;
          signal.addEventListener("abort", done, { once: true });
        });
      }
    } finally {
      const remaining = (this.listeners.get(taskId) ?? []).filter((l) => l !== me);
      if (remaining.length > 0) this.listeners.set(taskId, remaining);
      else this.listeners.delete(taskId);
      // A command that arrived for this task may now belong to an older, still-live listener.
      remaining.at(-1)?.wake();
    }
  }
}
