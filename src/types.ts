/**
 * Public types of the metafora library, in one place.
 *
 * The model is Go Metafora's (Task, Handler, Consumer, Coordinator, Client, Balancer), made
 * idiomatic: handlers are async functions that watch an AbortSignal, coordinators push events
 * into the consumer instead of blocking on channels, and every claim carries a fencing token.
 */

/** JSON object stored with a task (etcd key `tasks/T/props`). */
export type TaskProps = Record<string, unknown>;

/** A unit of long-lived work. The id is unique across the cluster and immutable. */
export interface Task<P extends TaskProps = TaskProps> {
  readonly id: string;
  readonly props: P;
}

/** What a handler's `run` resolves to. "done" deletes the task; "release" hands it back. */
export type HandlerResult = "done" | "release";

/**
 * Why a running task was asked to stop. Carried as `ctx.signal.reason` (an Error whose
 * `reason` field holds this value, see StopError) so handlers can tell a shutdown from a
 * lost claim.
 */
export type StopReason =
  | "shutdown" // the node is shutting down
  | "balance" // the balancer chose to move this task elsewhere
  | "command" // a stop_task node command, or an operator request
  | "lost" // the coordinator no longer holds this task's claim (owner key gone or changed)
  | "lease" // the node's lease is in doubt: every handler stops before it can expire
  | "deleted"; // the task was deleted while running

/** Minimal logger shape; consola instances satisfy it, and so can any embedding program's. */
export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

/** Everything a handler gets besides its task. */
export interface HandlerContext {
  /** Aborted when the task must stop; `signal.reason` is a StopError. */
  readonly signal: AbortSignal;
  /**
   * Fencing token: strictly increases each time the task is claimed (etcd: the owner key's
   * create revision). Pass it downstream so stale owners' writes can be rejected.
   */
  readonly token: number;
  /** Name of the node running the task. */
  readonly node: string;
  /** Logger tagged with the task id. */
  readonly log: Logger;
  /**
   * Epoch milliseconds by which the handler must have stopped if the node's claim cannot be
   * renewed (last confirmed renewal + TTL − safety margin). Infinity when the coordinator
   * cannot lose claims (memory). Re-read it: it moves forward with each renewal.
   */
  claimDeadline(): number;
  /** Client for the same coordinator: handlers may submit and delete tasks, send commands. */
  readonly client: Client;
  /**
   * Called on every stop request, including repeats (the signal aborts only once), with the
   * reason and how many requests there have been. A handler may treat a second request as
   * "stop now". Returns an unsubscribe function.
   */
  onStop(listener: (reason: StopReason, count: number) => void): () => void;
  /**
   * May the handler still act for this task? Synchronous. False once a stop was requested,
   * the claim was lost, the claim deadline passed, or the process was stalled (paused, GC,
   * VM freeze) for longer than the safety margin since the claim began; it stays false.
   * Check it right before every side effect: `if (!ctx.owned()) return "release"`.
   * Deadlines and stalls are measured on the monotonic clock: a wall-clock step moves nothing.
   */
  owned(): boolean;
  /**
   * Pace a handler: resolves true after `ms` if the task is still owned at that moment
   * (checked right before resolving), false as soon as it must stop (stop request, lost claim,
   * passed deadline, stall). `while (await ctx.sleep(1000)) { … }` never takes a step after a
   * pause past the deadline.
   */
  sleep(ms: number): Promise<boolean>;
  /**
   * Store JSON progress with the task, fenced by the claim: it only lands while this node's
   * claim with `token` stands. The next owner gets it as `lastCheckpoint`. Allowed after a
   * stop request (save progress on the way out). Rejects with ClaimLostError when the claim
   * is gone (the task then stops, reason "lost"), a TypeError for non-JSON values, and
   * CheckpointTooLargeError past MAX_CHECKPOINT_BYTES.
   */
  checkpoint(value: unknown): Promise<void>;
  /** The last checkpoint stored for this task (by any owner), or undefined if none. */
  readonly lastCheckpoint: unknown;
}

/** Identifies a claim for fenced writes: the node holding it and its fencing token. */
export interface ClaimRef {
  readonly node: string;
  readonly token: number;
}

/** A task handler: the unit users write. */
export interface Handler<P extends TaskProps = TaskProps> {
  /** Name tasks are routed by (props.handler, else the id before the first ':'). */
  readonly name?: string;
  /**
   * Runs the task until it finishes ("done") or must stop ("release"). It should return soon
   * after `ctx.signal` aborts. A thrown error or rejection releases the task and this node
   * backs off from it; it never deletes the task.
   */
  run(task: Task<P>, ctx: HandlerContext): Promise<HandlerResult>;
}

/** What a coordinator returns for a won claim. */
export interface Claim {
  /** Fencing token for this claim (see HandlerContext.token). */
  readonly token: number;
  /** The task's last stored checkpoint (JSON text), if it has one. */
  readonly checkpoint?: string;
}

/** Node-level command (docs/wire-format.md). Wire JSON: {"command": name, "parameters"?: {...}}. */
export interface NodeCommand {
  readonly command: string;
  readonly parameters?: Record<string, unknown>;
}

/**
 * The coordinator's live view of the cluster, kept from its watch (never polled).
 * Only balancers need it.
 */
export interface ClusterState {
  /** Running-task count per live node (nodes with no tasks appear with 0). */
  nodeTaskCounts(): ReadonlyMap<string, number>;
  /**
   * Tasks that exist and have no owner right now, as far as this node has seen; a coordinator
   * that knows a node is leaving counts that node's tasks here too (they are about to come free).
   */
  unclaimedCount(): number;
  /**
   * Subscribe to changes of the live node set (a node registered, left, or its lease ended).
   * Called after the view changed; it may fire for no visible change. Returns the unsubscribe
   * function. Optional: without it, membership changes are noticed by the drift check only.
   */
  onChange?(listener: () => void): () => void;
}

/** Callbacks a coordinator uses to push events into its consumer. */
export interface CoordinatorContext {
  /** This node's name. */
  readonly node: string;
  readonly log: Logger;
  /** A task may be claimable (new, released, or its owner vanished). Repeats are harmless. */
  /**
   * `rank` (default 0) orders the node's pending claims: lower ranks are tried first. The etcd
   * coordinator passes the node's rendezvous rank for the task, so nodes that see the same
   * backlog try disjoint tasks first.
   */
  announce(task: Task, rank?: number): void;
  /** A task this node may have been told about no longer exists or is owned elsewhere. */
  withdraw(taskId: string): void;
  /**
   * Announced tasks still waiting for a claim attempt here (optional). A coordinator that
   * ranks announcements can hold back those of later ranks while this many wait: they would
   * only be tried after the earlier ones anyway.
   */
  pendingClaims?(): number;
  /** A node command addressed to this node, delivered in submission order. */
  command(cmd: NodeCommand): void;
  /** This node no longer holds the claim on a running task. The consumer stops it. */
  lost(taskId: string, reason: Extract<StopReason, "lost" | "deleted">): void;
  /**
   * The node's claims can no longer be vouched for (keepalives failing). The consumer stops
   * claiming and aborts every handler; the promise settles once all have returned or
   * `deadline` (epoch ms) has passed, whichever is first.
   */
  suspend(deadline: number): Promise<void>;
  /** Claims are safe again (the node rejoined with a fresh lease). */
  resume(): void;
}

/** A broker adapter: the consumer's only way to reach the cluster (docs/architecture.md). */
export interface Coordinator {
  /** For logs, e.g. "etcd:/ns/node1" or "memory:node1". */
  readonly name: string;
  /** Register the node and start announcing tasks and commands. Rejects if it cannot. */
  init(ctx: CoordinatorContext): Promise<void>;
  /** Claim a task. Resolves undefined if someone else owns it or it no longer exists. */
  claim(task: Task): Promise<Claim | undefined>;
  /** Give up the claim so another node (or this one) can run it. Safe after close. */
  release(task: Task): Promise<void>;
  /** The task finished for good: delete it. Safe after close. */
  done(task: Task): Promise<void>;
  /** See HandlerContext.claimDeadline (epoch ms, for display and compatibility). */
  claimDeadline(): number;
  /**
   * The same deadline on the monotonic clock (performance.now() ms); Infinity when claims
   * cannot expire. Ownership checks use this one. Coordinators without it get
   * claimDeadline() translated at each read.
   */
  claimDeadlineMonotonic?(): number;
  /**
   * A process stall longer than this (ms) may have cost the node its claims (etcd: the lease
   * safety margin). Absent or Infinity when a stall cannot lose a claim (memory, embedded).
   */
  readonly stallMargin?: number;
  /**
   * Store a checkpoint (JSON text) for a claimed task, fenced by the claim's token. Rejects
   * with ClaimLostError when the claim is no longer this node's. Optional: without it,
   * ctx.checkpoint rejects with an error naming the coordinator.
   */
  checkpoint?(task: Task, token: number, json: string): Promise<void>;
  /** Live cluster view for balancers. */
  readonly cluster: ClusterState;
  /** A client on the same broker, for handlers. */
  readonly client: Client;
  /**
   * A graceful shutdown has begun: the consumer claims nothing more and is about to release
   * everything. Optional; a coordinator can tell the other nodes, so they stop counting this
   * one for shares and claim order before its releases reach them.
   */
  leaving?(): void;
  /** Stop watching and deregister. Does not release tasks: the consumer did that. */
  close(): Promise<void>;
}

/** What an operator or submitter sees of a task. */
export interface TaskInfo {
  readonly id: string;
  readonly props: TaskProps;
  /** Owning node, if claimed. */
  readonly owner?: string;
  /** Fencing token of the current claim, if claimed. */
  readonly token?: number;
  /** Set when the stored props cannot be read (they are shown as {}): what is wrong and the fix. */
  readonly propsError?: string;
  /** Set when the owner key holds something that is not an owner: what is wrong and the fix. */
  readonly ownerError?: string;
}

/** One task of a bulk submit. */
export interface TaskSubmission {
  readonly id: string;
  readonly props?: TaskProps;
}

/** What a bulk submit did with one task: created it, or found the id taken (left unchanged). */
export interface SubmitResult {
  readonly id: string;
  readonly result: "created" | "exists";
}

/** Used by submitters and operators, not by nodes. */
export interface Client {
  /** Create a task. Rejects with TaskExistsError if the id is taken. */
  submitTask(id: string, props?: TaskProps): Promise<void>;
  /**
   * Create many tasks; one result per task, in the order given. An id that is taken is
   * reported "exists" (not an error). Rejects with a TypeError naming the item before writing
   * anything when an item is malformed or an id appears twice.
   */
  submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]>;
  /** Delete a task; its running instance, if any, is stopped. Resolves false if absent. */
  deleteTask(id: string): Promise<boolean>;
  /** Send a command to a node. */
  submitCommand(node: string, cmd: NodeCommand): Promise<void>;
  /** Names of live nodes. */
  nodes(): Promise<string[]>;
  /** Every task with its owner and fencing token. */
  tasks(): Promise<TaskInfo[]>;
}

/** Consumer's read-only view of a running task. */
export interface RunningTask {
  readonly task: Task;
  /** Handler name the task was routed to. */
  readonly handler: string;
  /** Epoch ms when this node started it. */
  readonly started: number;
  /** Epoch ms of the first stop request, if any. */
  readonly stopped?: number;
  readonly stopReason?: StopReason;
  readonly token: number;
}

/** Result of Balancer.canClaim. */
export type ClaimDecision =
  | { readonly claim: true }
  /** Not now: ignore announcements of this task until `until` (epoch ms), then reconsider. */
  | { readonly claim: false; readonly until: number }
  /** Not at all: drop it until the coordinator announces it again. */
  | { readonly claim: false; readonly until?: undefined };

/** What a balancer may look at. */
export interface BalancerContext {
  readonly node: string;
  /** Running tasks on this node, sorted by id. */
  tasks(): RunningTask[];
  /**
   * How many tasks this node runs or is claiming right now, without building the sorted list
   * (canClaim runs before every claim, so it must be O(1)). Optional for custom contexts.
   */
  taskCount?(): number;
  readonly cluster: ClusterState;
}

/**
 * Why a rebalance runs: a node joined (a name not seen before), returned (seen, left, back),
 * or left; the spread drifted (found by the periodic drift check); the periodic balance; or a
 * `balance` command.
 */
export type RebalanceTrigger =
  | { readonly kind: "join" | "return" | "leave"; readonly nodes: readonly string[] }
  | { readonly kind: "drift" | "periodic" | "command" };

/** Decides what this node claims and what it gives up. A plain object works. */
export interface Balancer {
  /** Called once, before the coordinator's init. */
  init?(ctx: BalancerContext): void;
  /** Called before every claim attempt. May be async to delay this node in the claim race. */
  canClaim(task: Task): ClaimDecision | Promise<ClaimDecision>;
  /** Ids of running tasks this node should release now. */
  balance(): string[] | Promise<string[]>;
  /**
   * Membership-driven rebalancing (optional): after a change of the live node set, and on each
   * drift check, the ids this node should hand back so that nodes below their share can take
   * them. Return [] when the spread is fine. The consumer paces the releases: it asks again
   * before each slice, with `pass.step` > 0 once a rebalance is under way.
   */
  rebalance?(trigger: RebalanceTrigger, pass?: { readonly step: number }): string[] | Promise<string[]>;
}

/** Outcome of Consumer.shutdown. */
export interface ShutdownReport {
  /** True when every handler returned before the timeout. */
  readonly clean: boolean;
  /** Ids of tasks whose handlers had not returned when shutdown gave up on them. */
  readonly stuck: string[];
  /**
   * Ids of tasks whose release (or done) failed during shutdown, e.g. because the coordinator
   * was unreachable: their claims end only when the node's lease expires. Absent when none.
   */
  readonly unreleased?: string[];
}
