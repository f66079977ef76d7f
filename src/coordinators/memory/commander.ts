/**
 * In-memory task commands for the embedded coordinator: the same single-slot semantics as
 * etcd's `tasks/T/commands` (docs/wire-format.md). A command waits in the task's slot (a newer one
 * overwrites it) until the task's running instance takes it; only the most recently started
 * listener of a task takes commands, which is the current owner's.
 *
 * `onChange` sees every change of a slot (a command waiting, or gone because it was taken or
 * its task finished), so the embedded runtime can keep waiting commands on disk.
 */
import { messageProblem } from "../../statemachine/messages.ts";
import type { Message, TaskCommander, TaskCommandSource } from "../../statemachine/types.ts";
import type { ClaimRef } from "../../types.ts";

interface Listener {
  wake(): void;
}

export interface MemoryTaskCommandsOptions {
  /** Commands waiting from a previous run, by task id. */
  waiting?: Iterable<readonly [string, Message]>;
  /**
   * Called on every slot change; `undefined` means the slot emptied. send() resolves only once
   * a promise it returns has (the command is then durable); other changes do not wait for it.
   */
  onChange?: (taskId: string, message: Message | undefined) => void | Promise<void>;
  /** Does `claim` still hold `taskId`? A listener given a claim takes commands only while it does. */
  fence?: (taskId: string, claim: ClaimRef) => boolean;
}

export class MemoryTaskCommands implements TaskCommander, TaskCommandSource {
  private readonly slots: Map<string, Message>;
  private readonly listeners = new Map<string, Listener[]>();
  private readonly onChange: (taskId: string, message: Message | undefined) => void | Promise<void>;
  private readonly fence: ((taskId: string, claim: ClaimRef) => boolean) | undefined;

  constructor(opts: MemoryTaskCommandsOptions = {}) {
    this.fence = opts.fence;
    this.slots = new Map(opts.waiting ?? []);
    this.onChange = opts.onChange ?? (() => {});
  }

  async send(taskId: string, message: Message): Promise<void> {
    const problem = messageProblem(message);
    if (problem !== undefined) throw new TypeError(`command for task "${taskId}" is invalid: ${problem}`);
    await this.onChange(taskId, message);
    this.slots.set(taskId, message);
    const current = this.listeners.get(taskId)?.at(-1);
    current?.wake();
  }

  /** Drop a task's waiting command because the task is gone (etcd: done deletes tasks/T/). */
  forget(taskId: string): void {
    if (this.slots.delete(taskId)) this.onChange(taskId, undefined);
  }

  /** The command waiting for a task, if any (for operators and tests). */
  pending(taskId: string): Message | undefined {
    return this.slots.get(taskId);
  }

  async *listen(taskId: string, signal: AbortSignal, claim?: ClaimRef): AsyncIterable<Message> {
    let wake: () => void = () => {};
    const me: Listener = { wake: () => wake() };
    const list = this.listeners.get(taskId) ?? [];
    list.push(me);
    this.listeners.set(taskId, list);
    try {
      while (!signal.aborted) {
        const current =
          this.listeners.get(taskId)?.at(-1) === me && !(claim && this.fence && !this.fence(taskId, claim));
        const message = current ? this.slots.get(taskId) : undefined;
        if (message !== undefined) {
          this.slots.delete(taskId);
          this.onChange(taskId, undefined);
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
