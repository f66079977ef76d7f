/**
 * One node's view of a MemoryBroker, behind the Coordinator interface.
 *
 * Claims here hang on no lease: a claim lasts until released, finished, deleted or the node
 * closes. A process stall therefore cannot cost a claim (nobody else can take the task while
 * this process is frozen, since the broker lives in it), so there is no claim deadline and
 * no stall margin: ctx.owned() turns false only on a stop request or a lost (deleted) claim.
 * Writes are still fenced by token, which catches a handler that outlives its claim.
 */
import { ClaimLostError } from "../../errors.ts";
import type { Claim, Client, ClusterState, Coordinator, CoordinatorContext, Task } from "../../types.ts";
import type { NodeBroker } from "./broker-api.ts";

export class MemoryCoordinator implements Coordinator {
  readonly name: string;
  readonly cluster: ClusterState;
  readonly client: Client;
  private registered = false;
  /** Claims this node holds: task id → token (release and done are fenced by it). */
  private readonly claims = new Map<string, number>();

  constructor(
    private readonly broker: NodeBroker,
    readonly node: string,
  ) {
    this.name = `memory:${node}`;
    this.client = broker.client();
    this.cluster = {
      nodeTaskCounts: () => broker.nodeTaskCounts(),
      unclaimedCount: () => broker.unclaimedCount(),
      onChange: (listener) => broker.onMembershipChange(listener),
    };
  }

  async init(ctx: CoordinatorContext): Promise<void> {
    if (this.registered) throw new Error(`${this.name}: init() called twice without close()`);
    this.broker.register(this.node, this, ctx); // throws NodeNameTakenError while the name is live
    this.registered = true;
  }

  async claim(task: Task): Promise<Claim | undefined> {
    const token = this.broker.claim(this.node, this, task.id);
    if (token === undefined) return undefined;
    this.claims.set(task.id, token);
    const checkpoint = this.broker.checkpointOf(task.id);
    return checkpoint === undefined ? { token } : { token, checkpoint };
  }

  async release(task: Task): Promise<void> {
    const token = this.claims.get(task.id);
    this.claims.delete(task.id);
    if (token !== undefined) this.broker.release(this.node, task.id, token);
  }

  async done(task: Task): Promise<void> {
    const token = this.claims.get(task.id);
    this.claims.delete(task.id);
    if (token !== undefined) this.broker.done(this.node, task.id, token);
  }

  async checkpoint(task: Task, token: number, json: string): Promise<void> {
    if (this.claims.get(task.id) !== token) throw new ClaimLostError(task.id, token, "checkpoint");
    await this.broker.checkpoint(this.node, task.id, token, json);
  }

  claimDeadlineMonotonic(): number {
    return Infinity;
  }

  /** Memory claims cannot be lost to a lease: there is no lease. */
  claimDeadline(): number {
    return Infinity;
  }

  async close(): Promise<void> {
    if (!this.registered) return;
    this.registered = false;
    this.claims.clear();
    this.broker.unregister(this.node, this);
  }
}
