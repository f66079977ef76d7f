/**
 * Shared helpers for the state machine suites: a handler context for driving a stateful
 * handler the way the consumer does, a store wrapper that records every write, and the
 * environment abstraction that lets one contract suite run on the memory and the etcd stores.
 */
import { silentLogger } from "../../src/log.ts";
import { statefulHandler, type StatefulHandler } from "../../src/statemachine/stateful.ts";
import type {
  ErrorPolicy,
  Message,
  State,
  StatefulContext,
  StatefulRun,
  StateStore,
  TaskCommander,
  TaskCommandSource,
} from "../../src/statemachine/types.ts";
import type { Client, HandlerContext, HandlerResult, Logger, StopReason, Task } from "../../src/types.ts";
import { StopError } from "../../src/errors.ts";

/** What a contract suite needs from a store + commands implementation. */
export interface MachineEnv {
  readonly name: string;
  readonly store: StateStore;
  /** Stored state without creating one. */
  read(taskId: string): Promise<State | undefined>;
  /** Commands as seen by `node` (etcd: consumed only where node owns the task). */
  commands(node: string): TaskCommander & TaskCommandSource;
  /** Make `node` the task's owner (etcd: the owner key; memory: nothing to do). */
  own(taskId: string, node: string): Promise<void>;
  /** True once a sent command has been taken by a listener (the slot is empty). */
  commandTaken(taskId: string): Promise<boolean>;
}

/** A store that records every write, for assertions on what was persisted and when. */
export class RecordingStore implements StateStore {
  readonly writes: Array<{ taskId: string; state: State; at: number }> = [];
  failStores = false;
  constructor(private readonly inner: StateStore) {}
  load(taskId: string): Promise<State | undefined> {
    return this.inner.load(taskId);
  }
  async store(taskId: string, state: State): Promise<void> {
    if (this.failStores) throw new Error("injected store failure");
    await this.inner.store(taskId, state);
    this.writes.push({ taskId, state, at: Date.now() });
  }
  codes(taskId: string): string[] {
    return this.writes.filter((w) => w.taskId === taskId).map((w) => w.state.code);
  }
  last(taskId: string): State | undefined {
    return this.writes.filter((w) => w.taskId === taskId).at(-1)?.state;
  }
  count(taskId: string): number {
    return this.writes.filter((w) => w.taskId === taskId).length;
  }
}

const noClient: Client = {
  submitTask: () => Promise.reject(new Error("no client in state machine tests")),
  submitTasks: () => Promise.reject(new Error("no client in state machine tests")),
  deleteTask: () => Promise.reject(new Error("no client in state machine tests")),
  submitCommand: () => Promise.reject(new Error("no client in state machine tests")),
  nodes: () => Promise.resolve([]),
  tasks: () => Promise.resolve([]),
};

/**
 * Fencing tokens of the claims the environment's own() made (task + node → token): contexts
 * for that task and node carry it, so their fenced state writes and command takes hold.
 */
const claimTokens = new Map<string, number>();
export function noteClaim(taskId: string, node: string, token: number): void {
  claimTokens.set(`${taskId}\u0000${node}`, token);
}

/** A handler context like the consumer's: stop() aborts the signal with a StopError. */
export function makeContext(
  taskId: string,
  node = "node1",
  log: Logger = silentLogger,
): { ctx: HandlerContext; stop(reason?: StopReason): void } {
  const controller = new AbortController();
  const listeners = new Set<(reason: StopReason, count: number) => void>();
  let count = 0;
  const ctx: HandlerContext = {
    signal: controller.signal,
    token: claimTokens.get(`${taskId}\u0000${node}`) ?? 1,
    node,
    log,
    claimDeadline: () => Infinity,
    client: noClient,
    onStop(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    owned: () => !controller.signal.aborted,
    sleep: (ms) =>
      new Promise<boolean>((resolve) => {
        if (controller.signal.aborted) return resolve(false);
        const onAbort = (): void => {
          clearTimeout(timer);
          resolve(false);
        };
        const timer = setTimeout(() => {
          controller.signal.removeEventListener("abort", onAbort);
          resolve(!controller.signal.aborted);
        }, ms);
        controller.signal.addEventListener("abort", onAbort, { once: true });
      }),
    checkpoint: () => Promise.reject(new Error("no checkpoints in state machine tests")),
    lastCheckpoint: undefined,
  };
  return {
    ctx,
    stop(reason: StopReason = "shutdown") {
      count++;
      controller.abort(new StopError(reason, taskId));
      for (const l of listeners) l(reason, count);
    },
  };
}

/** A running task: its result (once settled), and a way to stop it. */
export interface Running {
  readonly result: Promise<HandlerResult>;
  /** The settled outcome, for polling: undefined while running. */
  outcome(): { result?: HandlerResult; error?: unknown } | undefined;
  stop(reason?: StopReason): void;
}

export function start(handler: StatefulHandler, taskId: string, node = "node1"): Running {
  const { ctx, stop } = makeContext(taskId, node);
  const task: Task = { id: taskId, props: {} };
  let settled: { result?: HandlerResult; error?: unknown } | undefined;
  const result = Promise.resolve(handler.run(task, ctx));
  result.then(
    (r) => (settled = { result: r }),
    (e) => (settled = { error: e }),
  );
  // Callers assert on `result`; this keeps a rejection from being reported as unhandled first.
  result.catch(() => undefined);
  return { result, outcome: () => settled, stop };
}

/** A stateful run function whose calls are counted and whose behaviour is swapped per call. */
export class ScriptedRun {
  calls = 0;
  readonly contexts: StatefulContext[] = [];
  /** Behaviour per call index; the default returns the first command it receives. */
  script: Array<(ctx: StatefulContext) => Promise<Message | string | undefined> | Message | string | undefined> = [];
  readonly run: StatefulRun = async (_task, ctx) => {
    const i = this.calls++;
    this.contexts.push(ctx);
    const step = this.script[i] ?? firstCommand;
    return (await step(ctx)) as Message;
  };
}

/** Return the first command received (a stop arrives as `release`). */
export async function firstCommand(ctx: StatefulContext): Promise<Message | undefined> {
  for await (const m of ctx.commands) return m;
  return undefined;
}

export function handlerFor(
  env: MachineEnv,
  store: StateStore,
  run: StatefulRun,
  node = "node1",
  errorPolicy?: ErrorPolicy,
): StatefulHandler {
  return statefulHandler({
    name: "sm",
    run,
    store,
    commands: env.commands(node),
    ...(errorPolicy ? { errorPolicy } : {}),
  });
}

let counter = 0;
/** A fresh task id per test so suites sharing a store never interfere. */
export function taskId(prefix = "t"): string {
  return `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

/** A policy that always answers with `message`, keeping the errors. */
export function fixedPolicy(message: Message): ErrorPolicy {
  return (_task, errors) => ({ message, errors });
}
