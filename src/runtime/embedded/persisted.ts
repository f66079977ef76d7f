/**
 * Durable wrappers around the memory broker's Coordinator and Client: every change to the set
 * of tasks (submit, delete, done) is committed to the store BEFORE it is applied in memory
 * and before the caller hears back, so an acknowledged submit survives kill -9. Claims and
 * releases are not persisted: they die with the process, which is what a restart wants.
 *
 * The store mirrors the broker's tasks exactly because every change goes through these
 * wrappers: the consumer uses the wrapped coordinator, and handlers (ctx.client), the HTTP API
 * and the declarative tasks use the wrapped client.
 */
import { TaskExistsError } from "../../errors.ts";
import { checkSubmissions, submitOneByOne } from "../../submit-batch.ts";
import type {
  Client,
  Coordinator,
  NodeCommand,
  SubmitResult,
  TaskInfo,
  TaskProps,
  TaskSubmission,
} from "../../types.ts";
import type { EmbeddedStore } from "./sqlite-store.ts";

/** Hooks for what hangs off a task: `onSubmitted` after a durable submit, `onGone` after delete/done. */
export interface TaskLifecycleHooks {
  onSubmitted?(id: string): void;
  onGone?(id: string, why: "deleted" | "done"): void;
}

/** `known` holds the ids stored or being stored, so a concurrent duplicate submit is refused. */
export function persistedClient(
  inner: Client,
  store: EmbeddedStore,
  known: Set<string>,
  hooks: TaskLifecycleHooks = {},
): Client {
  const client: Client = {
    async submitTask(id: string, props: TaskProps = {}): Promise<void> {
      const durable = typeof id === "string";
      if (durable && known.has(id)) throw new TaskExistsError(id);
      // Store first: once the broker has the task a consumer may claim and finish it at once,
      // and that "done" must find the task stored to remove it.
      if (durable) {
        known.add(id);
        try {
          await store.putTask(id, props);
        } catch (err) {
          known.delete(id);
          throw err;
        }
      }
      try {
        await inner.submitTask(id, props);
      } catch (err) {
        if (durable && !(err instanceof TaskExistsError)) {
          known.delete(id);
          await store.removeTask(id);
        }
        throw err;
      }
      if (durable) hooks.onSubmitted?.(id);
    },
    async deleteTask(id: string): Promise<boolean> {
      if (typeof id === "string" && known.has(id)) {
        await store.removeTask(id);
        known.delete(id);
        hooks.onGone?.(id, "deleted");
      }
      return inner.deleteTask(id);
    },
    /** One by one through submitTask, so each task is journaled exactly as a single submit is. */
    async submitTasks(list: readonly TaskSubmission[]): Promise<SubmitResult[]> {
      return submitOneByOne(checkSubmissions(list), (id, props) => client.submitTask(id, props));
    },
    submitCommand: (node: string, cmd: NodeCommand) => inner.submitCommand(node, cmd),
    nodes: () => inner.nodes(),
    tasks: (): Promise<TaskInfo[]> => inner.tasks(),
  };
  return client;
}

/**
 * Fencing tokens must keep increasing across restarts, but writing one to disk per claim would
 * double the cost of a claim. Instead a ceiling is reserved durably in blocks: the broker is
 * restored with the last reserved ceiling as its counter, so every token after a restart is
 * above every token handed out before it, whatever the crash.
 */
export class TokenReservation {
  static readonly BLOCK = 10_000;
  /** Every token handed out before this process started is at or below this. */
  readonly floor: number;
  private ceiling: number;
  private extending: Promise<void> | undefined;

  private constructor(private readonly store: EmbeddedStore) {
    this.floor = store.tokenCeiling();
    this.ceiling = this.floor;
  }

  /** Reserve the first block before any claim. */
  static async open(store: EmbeddedStore): Promise<TokenReservation> {
    const r = new TokenReservation(store);
    await r.extend(r.floor);
    return r;
  }

  /**
   * Call with every token handed out; extends the reservation long before it is reached. The
   * promise (awaited by the claim) resolves once the new ceiling is on disk.
   */
  observe(token: number): Promise<void> | undefined {
    if (token > this.ceiling - TokenReservation.BLOCK / 2 && !this.extending) {
      this.extending = this.extend(token).finally(() => (this.extending = undefined));
    }
    return this.extending;
  }

  private async extend(from: number): Promise<void> {
    const next = from + TokenReservation.BLOCK;
    await this.store.setTokenCeiling(next);
    this.ceiling = next;
  }
}

export function persistedCoordinator(
  inner: Coordinator,
  store: EmbeddedStore,
  known: Set<string>,
  client: Client,
  tokens: TokenReservation,
  hooks: TaskLifecycleHooks = {},
): Coordinator {
  return {
    get name() {
      return inner.name;
    },
    init: (ctx) => inner.init(ctx),
    async claim(task) {
      const claim = await inner.claim(task);
      if (claim) await tokens.observe(claim.token);
      return claim;
    },
    release: (task) => inner.release(task),
    async done(task) {
      await store.removeTask(task.id);
      known.delete(task.id);
      hooks.onGone?.(task.id, "done");
      await inner.done(task);
    },
    claimDeadline: () => inner.claimDeadline(),
    ...(inner.claimDeadlineMonotonic ? { claimDeadlineMonotonic: () => inner.claimDeadlineMonotonic!() } : {}),
    ...(inner.stallMargin !== undefined ? { stallMargin: inner.stallMargin } : {}),
    ...(inner.checkpoint ? { checkpoint: (task, token, json) => inner.checkpoint!(task, token, json) } : {}),
    get cluster() {
      return inner.cluster;
    },
    client,
    close: () => inner.close(),
  };
}
