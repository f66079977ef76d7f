/**
 * What a MemoryClient and a MemoryCoordinator call on the broker they were made by. The broker
 * implements these; the client and coordinator depend only on them, so imports run one way
 * (broker → client/coordinator → this file).
 */
import type { Client, Coordinator, CoordinatorContext, NodeCommand, TaskInfo, TaskProps } from "../../types.ts";

/** The broker as a MemoryClient sees it. */
export interface ClientBroker {
  submit(id: string, props: TaskProps | undefined): void;
  delete(id: string): boolean;
  command(node: string, cmd: NodeCommand): void;
  nodeNames(): string[];
  taskInfos(): TaskInfo[];
}

/**
 * The broker as one node's MemoryCoordinator sees it. `coordinator` is the caller itself: the
 * broker keeps it to tell a node's current registration from a closed one with the same name.
 */
export interface NodeBroker {
  client(): Client;
  register(node: string, coordinator: Coordinator, ctx: CoordinatorContext): void;
  unregister(node: string, coordinator: Coordinator): void;
  claim(node: string, coordinator: Coordinator, id: string): number | undefined;
  checkpointOf(id: string): string | undefined;
  checkpoint(node: string, id: string, token: number, json: string): void | Promise<void>;
  release(node: string, id: string, token?: number): void;
  done(node: string, id: string, token?: number): void;
  nodeTaskCounts(): Map<string, number>;
  unclaimedCount(): number;
  onMembershipChange(listener: () => void): () => void;
}
