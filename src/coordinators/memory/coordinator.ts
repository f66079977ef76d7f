/** One node's view of a MemoryBroker, behind the Coordinator interface. */
import type { Claim, Client, ClusterState, Coordinator, CoordinatorContext, Task } from "../../types.ts";
import type { MemoryBroker } from "./broker.ts";

export class MemoryCoordinator implements Coordinator {
  readonly name: string;
  readonly cluster: ClusterState;
  readonly client: Client;
  private registered = false;

  constructor(
    private readonly broker: MemoryBroker,
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
    return token === undefined ? undefined : { token };
  }

  async release(task: Task): Promise<void> {
    this.broker.release(this.node, task.id);
  }

  async done(task: Task): Promise<void> {
    this.broker.done(this.node, task.id);
  }

  /** Memory claims cannot be lost to a lease: there is no lease. */
  claimDeadline(): number {
    return Infinity;
  }

  async close(): Promise<void> {
    if (!this.registered) return;
    this.registered = false;
    this.broker.unregister(this.node, this);
  }
}
