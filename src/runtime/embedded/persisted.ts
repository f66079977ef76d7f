/**
 * Durable wrappers around the memory broker's Coordinator and Client: every change to the set
 * of tasks (submit, delete, done) is written to the DurableMap BEFORE it is applied in memory
 * and before the caller hears back, so an acknowledged submit survives kill -9. Claims and
 * releases are not persisted: they die with the process, which is what a restart wants.
 *
 * The map mirrors the broker's tasks exactly because every change goes through these wrappers:
 * the consumer uses the wrapped coordinator, and handlers (ctx.client), the HTTP API and the
 * declarative tasks use the wrapped client.
 */
import { TaskExistsError } from "../../errors.ts";
import { checkSubmissions, submitOneByOne } from "../../submit-batch.ts";
import type { Client, Coordinator, NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import type { DurableMap } from "./durable-map.ts";

/** `onGone` hears of every task deleted or done, so what hangs off a task can go with it. */
export function persistedClient(inner: Client, tasks: DurableMap<TaskProps>, onGone: (id: string) => void = () => {}): Client {
  const client: Client = {
    async submitTask(id: string, props: TaskProps = {}): Promise<void> {
      if (typeof id === "string" && tasks.has(id)) throw new TaskExistsError(id);
      // Journal first: once the broker has the task a consumer may claim and finish it at once,
      // and that "done" must find the task in the journal to remove it.
      const journaled = typeof id === "string";
      if (journaled) tasks.set(id, props);
      try {
        await inner.submitTask(id, props);
      } catch (err) {
        if (journaled && !(err instanceof TaskExistsError)) tasks.delete(id);
        throw err;
      }
    },
    async deleteTask(id: string): Promise<boolean> {
      if (typeof id === "string") {
        tasks.delete(id);
        onGone(id);
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

  constructor(private readonly meta: DurableMap<number>) {
    const stored = meta.get("tokenCeiling");
    this.floor = typeof stored === "number" && Number.isSafeInteger(stored) && stored > 0 ? stored : 0;
    this.ceiling = this.floor;
    this.extend(this.floor);
  }

  /** Call with every token handed out; extends the reservation long before it is reached. */
  observe(token: number): void {
    if (token > this.ceiling - TokenReservation.BLOCK / 2) this.extend(token);
  }

  private extend(from: number): void {
    this.ceiling = from + TokenReservation.BLOCK;
    this.meta.set("tokenCeiling", this.ceiling);
  }
}

export function persistedCoordinator(
  inner: Coordinator,
  tasks: DurableMap<TaskProps>,
  client: Client,
  tokens: TokenReservation,
  onGone: (id: string) => void = () => {},
): Coordinator {
  return {
    get name() {
      return inner.name;
    },
    init: (ctx) => inner.init(ctx),
    async claim(task) {
      const claim = await inner.claim(task);
      if (claim) tokens.observe(claim.token);
      return claim;
    },
    release: (task) => inner.release(task),
    async done(task) {
      tasks.delete(task.id);
      onGone(task.id);
      await inner.done(task);
    },
    claimDeadline: () => inner.claimDeadline(),
    get cluster() {
      return inner.cluster;
    },
    client,
    close: () => inner.close(),
  };
}
