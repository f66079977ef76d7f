/**
 * MemoryBroker: an in-process broker shared by any number of nodes (consumers) and clients.
 * It is a real coordinator with the semantics of the etcd one, not a test double: exactly one
 * claim wins, release re-announces a task to every live node, done and delete remove it for
 * good, node names are unique while live, node commands reach only their node in order, and
 * every claim gets a strictly larger fencing token. It is the engine of the runtime's embedded
 * mode (runtime/embedded/, which persists changes itself). Claims are not persisted: like
 * etcd leases they die with the process.
 *
 * Everything is synchronous under the hood (one event loop, no locks needed); the async
 * Coordinator/Client surface is there so callers cannot tell it from etcd.
 */
import { ClaimLostError, NodeNameTakenError, TaskExistsError, describeError } from "../../errors.ts";
import { getLogger } from "../../log.ts";
import { assertNodeName, assertTaskId } from "../../ids.ts";
import type { Client, Coordinator, CoordinatorContext, NodeCommand, Task, TaskInfo, TaskProps } from "../../types.ts";
import type { ClientBroker, NodeBroker } from "./broker-api.ts";
import { MemoryClient } from "./client.ts";
import { MemoryCoordinator } from "./coordinator.ts";

/** What survives a restart: the tasks and the fencing-token counter. JSON-serialisable. */
export interface BrokerSnapshot {
  readonly version: 1;
  /** Last fencing token handed out; tokens keep increasing across restarts. */
  readonly lastToken: number;
  readonly tasks: ReadonlyArray<{ readonly id: string; readonly props: TaskProps }>;
}

export interface MemoryBrokerOptions {
  /** Start from a snapshot (from snapshot(), possibly after a JSON round trip). */
  snapshot?: BrokerSnapshot;
  /** Called after a task was submitted, deleted or finished (done), e.g. to persist snapshot(). */
  onChange?: () => void;
  /** Checkpoints (JSON text) restored from a previous run, by task id. */
  checkpoints?: Iterable<readonly [string, string]>;
  /**
   * Called synchronously on every checkpoint change, after the fence check and before the
   * change is applied (undefined: removed because its task is gone). If it throws, nothing
   * changes and the error reaches the caller: a durable store writes here.
   */
  onCheckpoint?: (taskId: string, json: string | undefined, token?: number) => void | Promise<void>;
}

interface TaskRecord {
  readonly task: Task;
  owner: string | undefined;
  token: number | undefined;
}

interface LiveNode {
  readonly coordinator: Coordinator;
  readonly ctx: CoordinatorContext;
  readonly owned: Set<string>;
}

/** Namespace name used in NodeNameTakenError messages. */
const NAMESPACE = "memory";

export class MemoryBroker implements ClientBroker, NodeBroker {
  private readonly records = new Map<string, TaskRecord>();
  private readonly live = new Map<string, LiveNode>();
  /** Commands for nodes that are not live yet, delivered in order when they register. */
  private readonly mailboxes = new Map<string, NodeCommand[]>();
  private lastToken = 0;
  private unclaimed = 0;
  private readonly onChange: (() => void) | undefined;
  /** Listeners for changes of the live node set (ClusterState.onChange). */
  private readonly membershipListeners = new Set<() => void>();
  private readonly checkpoints: Map<string, string>;
  private readonly onCheckpoint:
    | ((taskId: string, json: string | undefined, token?: number) => void | Promise<void>)
    | undefined;

  constructor(opts: MemoryBrokerOptions = {}) {
    this.onChange = opts.onChange;
    this.checkpoints = new Map(opts.checkpoints ?? []);
    this.onCheckpoint = opts.onCheckpoint;
    if (opts.snapshot !== undefined) this.load(opts.snapshot);
  }

  /** A coordinator for one node. Its init() rejects with NodeNameTakenError while `node` is live. */
  coordinator(node: string): Coordinator {
    assertNodeName(node);
    return new MemoryCoordinator(this, node);
  }

  /** A client for submitters and operators. */
  client(): Client {
    return new MemoryClient(this);
  }

  /** Tasks with their props (sorted by id) and the token counter; claims are not included. */
  snapshot(): BrokerSnapshot {
    const tasks = [...this.records.values()]
      .map((r) => ({ id: r.task.id, props: r.task.props }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { version: 1, lastToken: this.lastToken, tasks };
  }

  // ---------------------------------------------------------------------------------------
  // Used by MemoryCoordinator (one per node)

  /** @internal */
  register(node: string, coordinator: Coordinator, ctx: CoordinatorContext): void {
    if (this.live.has(node)) throw new NodeNameTakenError(node, NAMESPACE);
    this.live.set(node, { coordinator, ctx, owned: new Set() });
    this.membershipChanged();
    // The initial listing: every unclaimed task, then the commands that waited for this node.
    for (const record of this.records.values()) {
      if (record.owner === undefined) safely(() => ctx.announce(record.task));
    }
    const mail = this.mailboxes.get(node);
    if (mail) {
      this.mailboxes.delete(node);
      for (const cmd of mail) safely(() => ctx.command(cmd));
    }
  }

  /** @internal The node is gone: its claims die with it and their tasks are announced again. */
  unregister(node: string, coordinator: Coordinator): void {
    const entry = this.live.get(node);
    if (!entry || entry.coordinator !== coordinator) return;
    this.live.delete(node);
    this.membershipChanged();
    const freed: Task[] = [];
    for (const id of entry.owned) {
      const record = this.records.get(id);
      if (!record) continue;
      record.owner = undefined;
      record.token = undefined;
      this.unclaimed++;
      freed.push(record.task);
    }
    for (const task of freed) this.announce(task);
  }

  /** @internal Fencing token when `node` wins the claim; undefined when owned or gone. */
  claim(node: string, coordinator: Coordinator, id: string): number | undefined {
    const entry = this.live.get(node);
    const record = this.records.get(id);
    if (!entry || entry.coordinator !== coordinator || !record || record.owner !== undefined) return undefined;
    record.owner = node;
    record.token = ++this.lastToken;
    this.unclaimed--;
    entry.owned.add(id);
    // Other nodes need not race for it any more.
    for (const [name, other] of this.live) if (name !== node) safely(() => other.ctx.withdraw(id));
    return record.token;
  }

  /**
   * Does `node` hold the claim on `id` with this token? The fence of every write made for a
   * claimed task (state, checkpoint, task commands, release, done).
   */
  holds(id: string, node: string, token: number): boolean {
    const record = this.records.get(id);
    return record !== undefined && record.owner === node && record.token === token && this.live.has(node);
  }

  /** The task's checkpoint (JSON text), if any. */
  checkpointOf(id: string): string | undefined {
    return this.checkpoints.get(id);
  }

  /** @internal Store a checkpoint, fenced by the claim; ClaimLostError if it does not hold. */
  checkpoint(node: string, id: string, token: number, json: string): void | Promise<void> {
    if (!this.holds(id, node, token)) throw new ClaimLostError(id, token, "checkpoint");
    // A persisting hook may answer with a promise: the checkpoint is durable once it settles.
    const written = this.onCheckpoint?.(id, json, token);
    this.checkpoints.set(id, json);
    return written;
  }

  /** @internal Give up a claim (no-op unless `node` owns the task, with `token` when given). */
  release(node: string, id: string, token?: number): void {
    const record = this.records.get(id);
    if (!record || record.owner !== node || (token !== undefined && record.token !== token)) return;
    this.live.get(node)?.owned.delete(id);
    record.owner = undefined;
    record.token = undefined;
    this.unclaimed++;
    this.announce(record.task);
  }

  /** @internal The task finished for good (no-op unless `node` owns it, with `token` when given). */
  done(node: string, id: string, token?: number): void {
    const record = this.records.get(id);
    if (!record || record.owner !== node || (token !== undefined && record.token !== token)) return;
    this.live.get(node)?.owned.delete(id);
    this.records.delete(id);
    this.dropCheckpoint(id);
    this.changed();
  }

  private dropCheckpoint(id: string): void {
    if (!this.checkpoints.has(id)) return;
    safely(() => this.onCheckpoint?.(id, undefined));
    this.checkpoints.delete(id);
  }

  /** @internal */
  nodeTaskCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [name, entry] of this.live) counts.set(name, entry.owned.size);
    return counts;
  }

  /** @internal */
  unclaimedCount(): number {
    return this.unclaimed;
  }

  /** @internal Subscribe to changes of the live node set; returns the unsubscribe function. */
  onMembershipChange(listener: () => void): () => void {
    this.membershipListeners.add(listener);
    return () => this.membershipListeners.delete(listener);
  }

  private membershipChanged(): void {
    // Async, as a watch event would be: listeners never run inside register/unregister.
    if (this.membershipListeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of [...this.membershipListeners]) safely(listener);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Used by MemoryClient

  /** @internal */
  submit(id: string, props: TaskProps | undefined): void {
    assertTaskId(id);
    if (this.records.has(id)) throw new TaskExistsError(id);
    const task: Task = Object.freeze({ id, props: cloneProps(id, props ?? {}) });
    this.records.set(id, { task, owner: undefined, token: undefined });
    this.unclaimed++;
    this.changed();
    this.announce(task);
  }

  /** @internal Delete a task; a running instance is told it was deleted. */
  delete(id: string): boolean {
    const record = this.records.get(id);
    if (!record) return false;
    this.records.delete(id);
    this.dropCheckpoint(id);
    if (record.owner === undefined) {
      this.unclaimed--;
      for (const entry of this.live.values()) safely(() => entry.ctx.withdraw(id));
    } else {
      const owner = this.live.get(record.owner);
      owner?.owned.delete(id);
      if (owner) safely(() => owner.ctx.lost(id, "deleted"));
    }
    this.changed();
    return true;
  }

  /** @internal Deliver now if the node is live, else when it registers. In order either way. */
  command(node: string, cmd: NodeCommand): void {
    assertNodeName(node);
    const copy = cloneCommand(cmd);
    const entry = this.live.get(node);
    if (entry) {
      safely(() => entry.ctx.command(copy));
      return;
    }
    const mail = this.mailboxes.get(node);
    if (mail) mail.push(copy);
    else this.mailboxes.set(node, [copy]);
  }

  /** @internal */
  nodeNames(): string[] {
    return [...this.live.keys()].sort();
  }

  /** @internal */
  taskInfos(): TaskInfo[] {
    const infos: TaskInfo[] = [];
    for (const r of this.records.values()) {
      infos.push(
        r.owner === undefined
          ? { id: r.task.id, props: r.task.props }
          : { id: r.task.id, props: r.task.props, owner: r.owner, token: r.token! },
      );
    }
    return infos.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  // ---------------------------------------------------------------------------------------

  private announce(task: Task): void {
    for (const entry of this.live.values()) safely(() => entry.ctx.announce(task));
  }

  private changed(): void {
    if (this.onChange) safely(this.onChange);
  }

  private load(snapshot: BrokerSnapshot): void {
    const where = "memory broker snapshot";
    if (!snapshot || typeof snapshot !== "object" || !Array.isArray(snapshot.tasks)) {
      throw new TypeError(`${where}: expected an object with a "tasks" array, got ${describeError(snapshot)}`);
    }
    if (snapshot.version !== 1)
      throw new TypeError(`${where}: unsupported version ${JSON.stringify(snapshot.version)}; expected 1`);
    const lastToken = snapshot.lastToken ?? 0;
    if (!Number.isSafeInteger(lastToken) || lastToken < 0) {
      throw new TypeError(
        `${where}: "lastToken" must be a non-negative integer, got ${JSON.stringify(snapshot.lastToken)}`,
      );
    }
    this.lastToken = lastToken;
    snapshot.tasks.forEach((t, i) => {
      if (!t || typeof t.id !== "string" || t.id === "") {
        throw new TypeError(`${where}: tasks[${i}].id must be a non-empty string, got ${describeError(t?.id)}`);
      }
      if (this.records.has(t.id)) throw new TypeError(`${where}: task id ${JSON.stringify(t.id)} appears twice`);
      const task: Task = Object.freeze({ id: t.id, props: cloneProps(t.id, t.props ?? {}) });
      this.records.set(t.id, { task, owner: undefined, token: undefined });
      this.unclaimed++;
    });
  }
}

/** Deep copy through JSON: the broker's copy cannot be changed by the caller, and it persists. */
function cloneProps(id: string, props: unknown): TaskProps {
  if (props === null || typeof props !== "object" || Array.isArray(props)) {
    throw new TypeError(
      `props of task ${JSON.stringify(id)} must be a JSON object, got ${Array.isArray(props) ? "an array" : describeError(props)}`,
    );
  }
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(props));
  } catch (err) {
    throw new TypeError(`props of task ${JSON.stringify(id)} must be JSON-serialisable: ${(err as Error).message}`);
  }
  return Object.freeze(copy as TaskProps);
}

function cloneCommand(cmd: NodeCommand): NodeCommand {
  if (!cmd || typeof cmd !== "object" || typeof cmd.command !== "string" || cmd.command === "") {
    throw new TypeError(`node command must be an object with a non-empty string "command", got ${describeError(cmd)}`);
  }
  const params = cmd.parameters;
  if (params === undefined || params === null) return { command: cmd.command };
  if (typeof params !== "object" || Array.isArray(params)) {
    throw new TypeError(`node command "parameters" must be an object, got ${describeError(params)}`);
  }
  return { command: cmd.command, parameters: JSON.parse(JSON.stringify(params)) as Record<string, unknown> };
}

/** A node's callback must never break the broker (or the caller that triggered it). */
function safely(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    getLogger().error(`[memory broker] a node callback threw: ${describeError(err)}`);
  }
}
