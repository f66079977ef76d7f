/** Client for a MemoryBroker: submit and delete tasks, send node commands, list nodes and tasks. */
import { checkSubmissions, submitOneByOne } from "../../submit-batch.ts";
import type { Client, NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import type { ClientBroker } from "./broker-api.ts";

export class MemoryClient implements Client {
  constructor(private readonly broker: ClientBroker) {}

  async submitTask(id: string, props?: TaskProps): Promise<void> {
    this.broker.submit(id, props);
  }

  /** Checked as a whole first; then each task as submitTask would (the broker is in memory). */
  async submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]> {
    const checked = checkSubmissions(tasks);
    return submitOneByOne(checked, async (id, props) => this.broker.submit(id, props));
  }

  async deleteTask(id: string): Promise<boolean> {
    return this.broker.delete(id);
  }

  /** Delivered in order; a command for a node that is not live waits until it registers. */
  async submitCommand(node: string, cmd: NodeCommand): Promise<void> {
    this.broker.command(node, cmd);
  }

  async nodes(): Promise<string[]> {
    return this.broker.nodeNames();
  }

  async tasks(): Promise<TaskInfo[]> {
    return this.broker.taskInfos();
  }
}
