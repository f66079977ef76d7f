/**
 * Adapter from a stateful handler (docs/architecture.md) to a plain Handler the consumer runs: each claimed
 * task runs through the state machine, with its state in `store` and its commands from
 * `commands`. Also the introspection point for the info endpoint (state and since when).
 */
import type { Handler, HandlerContext, HandlerResult, Task, TaskProps } from "../types.ts";
import { defaultErrorPolicy } from "./error-policy.ts";
import { runStateMachine } from "./runner.ts";
import type { ErrorPolicy, State, StatefulRun, StateStore, TaskCommandSource } from "./types.ts";

export interface StatefulHandlerOptions<P extends TaskProps = TaskProps> {
  /** Name tasks are routed by (see Handler.name). */
  name?: string;
  run: StatefulRun<P>;
  store: StateStore;
  commands: TaskCommandSource;
  /** Default: defaultErrorPolicy() (8 errors in 4 h → failed, else exponential back-off). */
  errorPolicy?: ErrorPolicy;
}

/** A running task's state on this node and when it entered it. */
export interface StateSnapshot {
  readonly state: State;
  readonly since: Date;
}

export interface StatefulHandler<P extends TaskProps = TaskProps> extends Handler<P> {
  readonly stateful: true;
  /** State of a task this handler is running on this node, or undefined. */
  stateOf(taskId: string): StateSnapshot | undefined;
}

export function statefulHandler<P extends TaskProps = TaskProps>(opts: StatefulHandlerOptions<P>): StatefulHandler<P> {
  if (typeof opts.run !== "function")
    throw new TypeError("statefulHandler: run must be a function (task, ctx) => message");
  if (!opts.store || typeof opts.store.load !== "function" || typeof opts.store.store !== "function") {
    throw new TypeError("statefulHandler: store must be a StateStore with load() and store()");
  }
  if (!opts.commands || typeof opts.commands.listen !== "function") {
    throw new TypeError("statefulHandler: commands must be a TaskCommandSource with listen()");
  }
  const errorPolicy = opts.errorPolicy ?? defaultErrorPolicy();
  // Keyed by task id; each run owns its entry object, so a late finish of an old run cannot
  // delete the entry of a newer run of the same task.
  const running = new Map<string, { snapshot?: StateSnapshot }>();

  const handler: StatefulHandler<P> = {
    stateful: true,
    async run(task: Task<P>, ctx: HandlerContext): Promise<HandlerResult> {
      const entry: { snapshot?: StateSnapshot } = {};
      running.set(task.id, entry);
      try {
        return await runStateMachine({
          task,
          ctx,
          run: opts.run,
          store: opts.store,
          commands: opts.commands,
          errorPolicy,
          onState: (state, since) => (entry.snapshot = { state, since }),
        });
      } finally {
        if (running.get(task.id) === entry) running.delete(task.id);
      }
    },
    stateOf(taskId: string): StateSnapshot | undefined {
      return running.get(taskId)?.snapshot;
    },
  };
  if (opts.name !== undefined) return { ...handler, name: opts.name };
  return handler;
}
