/**
 * What this node knows about tasks, and what it tells its consumer. It applies the tasks/
 * mirror's snapshots and events to the task table, keeps the node's own claims (task id →
 * fencing token), and turns changes into consumer calls:
 *
 *   task key put, unowned           → announce       task key deleted, ours  → lost "deleted"
 *   owner put by someone else       → withdraw       owner deleted, task left → announce
 *   our owner key deleted/replaced  → lost "lost"    owner with our name that no claim
 *                                                     accounts for → released (orphan)
 *
 * A snapshot (first listing or relist after watch trouble) is reconciled against the claims,
 * so a claim that ended while the watch was down is reported lost all the same.
 * Malformed props skip the task and malformed owners count as someone else's, each logged
 * once per value.
 */
import { describeError } from "../../errors.ts";
import type { CoordinatorContext, Logger } from "../../types.ts";
import type { Keys } from "./keys.ts";
import { rendezvousRanksWithRoom } from "./rendezvous.ts";

/**
 * Tasks this node ranks r-th for (rendezvous order) are announced r × this many ms after those
 * it ranks first for. Announcing them all at once would only order them within one watch
 * response, and a bulk submit arrives as hundreds of responses: every node would work through
 * the same tasks response by response and collide on nearly every claim. Delayed, a node
 * reaches a task it ranks second for only after the node that ranks it first has had its turn.
 */
const RANK_DELAY_MS = 150;
/**
 * While more than this many announced tasks wait for this node's claim workers, due groups of
 * later ranks wait one more RANK_DELAY_MS: the consumer tries lower ranks first, so they would
 * only sit in its queue (and be withdrawn again as other nodes claim them). In a bulk submit
 * of 100,000 tasks on 10 nodes that is 90,000 announcements and withdrawals per node saved.
 */
const HOLD_BACK_PENDING = 1024;
import { ownerRecord, parseProps, type TaskRecord, TaskTable } from "./task-table.ts";
import type { MirrorEvent, MirrorKv, SnapshotSink } from "./watch.ts";

export interface TaskViewOptions {
  readonly keys: Keys;
  readonly node: string;
  readonly log: Logger;
  /** The consumer's callbacks (absent before init). */
  context(): CoordinatorContext | undefined;
  /** An owner key with our name that no claim of ours accounts for. */
  orphan(id: string, createRevision: number): void;
  /** A claim ended without the consumer asking (for metrics). */
  lost(id: string, reason: "lost" | "deleted"): void;
  /** Live node names (the claim order is arranged so that they do not collide). */
  liveNodes?(): readonly string[];
  /** Tasks the cluster counts as unclaimed (with a leaving node's); the table's count if absent. */
  unclaimedCount?(): number;
}

export class TaskView {
  table = new TaskTable();
  /** Claims this node holds: task id → fencing token (owner key create revision). */
  readonly claims = new Map<string, number>();
  /** Claims in flight: their owner events must not be mistaken for orphans. */
  readonly claiming = new Set<string>();
  /** Highest revision applied (snapshot or event). */
  revision = 0;
  /**
   * Tasks to announce after the current response: record → the node whose claim just ended, if
   * any. Records, not ids, from here to the delayed announcements: each later look costs no
   * lookup in the table (at 100,000 tasks on 10 nodes, a node checks ~90,000 delayed tasks).
   */
  private readonly toAnnounce = new Map<Readonly<TaskRecord>, string | undefined>();
  /** Delayed announcements per rank - 1, each queue in due order. */
  private readonly delayed: RankQueue[] = [];
  private delayedTimer: ReturnType<typeof setTimeout> | undefined;
  private delayedAt = Infinity;
  private readonly warned = new Set<string>();
  /** Per node, announced tasks that went to it first and are not claimed yet (TaskRecord.assignee). */
  private readonly promised = new Map<string, number>();

  constructor(private readonly o: TaskViewOptions) {}

  /** The node holds or is making a claim on this task. */
  isHeld(id: string): boolean {
    return this.claims.has(id) || this.claiming.has(id);
  }

  /** A claim that won at `token` but that the watch has already seen end. */
  endedAlready(id: string, token: number): boolean {
    return this.revision >= token && this.table.get(id)?.owner?.createRevision !== token;
  }

  snapshot(kvs: readonly MirrorKv[], revision: number): void {
    const sink = this.beginSnapshot();
    sink.page(kvs);
    sink.commit(revision, "listing");
  }

  /** A listing streamed page by page into a new table, which replaces the current one on commit. */
  beginSnapshot(): SnapshotSink {
    const next = new TaskTable();
    return {
      page: (kvs) => next.addListed(kvs, this.o.keys),
      commit: (revision) => this.replaceTable(next, revision),
    };
  }

  private replaceTable(next: TaskTable, revision: number): void {
    const previous = this.table;
    this.table = next;
    this.revision = revision;
    this.promised.clear(); // the new table's records went to nobody yet
    for (const [id, token] of [...this.claims]) {
      if (token > revision) continue; // claimed after this listing; the watch covers it
      const record = next.get(id);
      if (record?.owner?.createRevision !== token) this.loseClaim(id, record?.exists ? "lost" : "deleted");
    }
    for (const record of previous.all()) {
      const now = next.get(record.id);
      const wasClaimable = record.exists && !record.owner;
      if (wasClaimable && (!now?.exists || now.owner)) this.o.context()?.withdraw(record.id);
    }
    const claimable: Readonly<TaskRecord>[] = [];
    for (const record of next.all()) {
      const owner = record.owner;
      if (owner) {
        if (owner.node === undefined) this.warnMalformedOwner(record.id, owner.raw, owner.createRevision);
        else if (owner.node === this.o.node && !this.isHeld(record.id)) this.o.orphan(record.id, owner.createRevision);
      } else if (record.exists) {
        claimable.push(record);
      }
    }
    // Every node lists the same backlog; announced in key order, they would all race for the
    // same task at the same moment and most claims would lose. Rendezvous order keeps their
    // attempts disjoint.
    this.announceRanked(claimable);
  }

  /**
   * Announce every claimable task again, from the table: after a suspension, during which the
   * consumer ignored announcements. The watch kept the table current meanwhile, so this needs
   * no listing (at 100,000 tasks a relist by every suspended node at once is itself a load
   * that makes etcd slow enough for the next suspension).
   */
  reannounce(): void {
    const claimable: Readonly<TaskRecord>[] = [];
    for (const record of this.table.all()) if (record.exists && !record.owner) claimable.push(record);
    this.announceRanked(claimable);
  }

  /**
   * A claim whose transaction got no answer may have won all the same. The watch tells: once
   * its owner event is applied, an owner key with our name that no claim accounts for is an
   * orphan. An event applied while the claim was still in flight was not treated as one, so
   * look at the table again. And if it did not win and nobody else did either, announce it
   * again: the consumer took the unanswered claim as a miss, and no watch event would ever
   * offer the task again (under an overloaded etcd, every node's attempt at a task can go
   * unanswered, and the task would wait for a restart).
   */
  claimMayHaveLanded(id: string): void {
    if (this.isHeld(id)) return;
    const record = this.table.get(id);
    const owner = record?.owner;
    if (owner?.node === this.o.node) this.o.orphan(id, owner.createRevision);
    else if (record?.exists && !owner) this.announce(record);
  }

  events(events: readonly MirrorEvent[]): void {
    for (const ev of events) {
      if (ev.kv.modRevision > this.revision) this.revision = ev.kv.modRevision;
      const parsed = this.o.keys.parseTaskKey(ev.kv.key);
      if (!parsed) continue;
      const { id, part } = parsed;
      if (part === "task") this.onTaskKey(id, ev);
      else if (part === "props") this.onPropsKey(id, ev);
      else if (part === "owner") this.onOwnerKey(id, ev);
      // tasks/T/checkpoint is read with the claim; tasks/T/commands belongs to the state
      // machine's listener.
    }
    // A response can carry many tasks at once (a batch release, an expired lease). Every node
    // gets the same list; announcing it in rendezvous order keeps their claims apart.
    if (this.toAnnounce.size === 0) return;
    // Freed tasks are ranked without the node that just gave them up: it released them (to
    // be run elsewhere: a rebalance, a shutdown) or its lease ended (it is dead, and its marker
    // may vanish only in a later response). Ranked first, it would make every other node wait.
    const byPrevious = new Map<string | undefined, Readonly<TaskRecord>[]>();
    for (const [record, previous] of this.toAnnounce) {
      const group = byPrevious.get(previous);
      if (group) group.push(record);
      else byPrevious.set(previous, [record]);
    }
    this.toAnnounce.clear();
    for (const [previous, records] of byPrevious) this.announceRanked(records, previous);
  }

  /** Report a claim as ended (also used when a snapshot contradicts it). */
  loseClaim(id: string, reason: "lost" | "deleted"): void {
    this.claims.delete(id);
    this.o.log.warn(
      reason === "deleted"
        ? `task ${id} was deleted while this node ran it`
        : `lost the claim on ${id} (owner key deleted or replaced)`,
    );
    this.o.lost(id, reason);
    try {
      this.o.context()?.lost(id, reason);
    } catch (err) {
      this.o.log.error(`consumer lost(${id}) failed: ${describeError(err)}`);
    }
  }

  private onTaskKey(id: string, ev: MirrorEvent): void {
    if (ev.type === "put") {
      const record = this.table.setExists(id, true);
      if (record && !record.owner && !this.toAnnounce.has(record)) this.toAnnounce.set(record, undefined);
      return;
    }
    this.unpromise(this.table.get(id));
    this.table.setExists(id, false);
    if (this.claims.has(id)) this.loseClaim(id, "deleted");
    else this.o.context()?.withdraw(id);
  }

  private onPropsKey(id: string, ev: MirrorEvent): void {
    if (ev.type === "delete") {
      this.table.setProps(id, undefined, 0);
      return;
    }
    const record = this.table.setProps(id, ev.kv.value, ev.kv.modRevision);
    // Props arrived after the task key.
    if (record?.exists && !record.owner && !this.toAnnounce.has(record)) this.toAnnounce.set(record, undefined);
  }

  private onOwnerKey(id: string, ev: MirrorEvent): void {
    const self = this.o.node;
    if (ev.type === "delete") {
      const record = this.table.setOwner(id, undefined);
      const previous = this.table.replacedOwner;
      if (previous?.node === self && this.claims.get(id) === previous.createRevision) this.loseClaim(id, "lost");
      if (record?.exists) this.toAnnounce.set(record, previous?.node);
      return;
    }
    const owner = ownerRecord(ev.kv);
    const record = this.table.setOwner(id, owner);
    this.unpromise(record);
    const previous = this.table.replacedOwner;
    if (owner.node === undefined) this.warnMalformedOwner(id, owner.raw, owner.createRevision);
    // A claim of ours is in the table before any later change of its key (the watch delivers
    // in revision order): only a key that was or is ours can concern one. Another node's claim
    // of a free task, nearly every event in a busy cluster, skips the lookup.
    if (previous?.node === self || owner.node === self) {
      const token = this.claims.get(id);
      if (token !== undefined) {
        if (owner.createRevision !== token || owner.node !== self) this.loseClaim(id, "lost");
        return;
      }
      if (owner.node === self) {
        if (!this.claiming.has(id)) this.o.orphan(id, owner.createRevision);
        return;
      }
    }
    this.withdraw(record, id);
  }

  /** Tell the consumer a task is not claimable any more, if it was ever told it was. */
  private withdraw(record: Readonly<TaskRecord> | undefined, id: string): void {
    if (record) {
      if (!record.announced) return;
      this.table.setAnnounced(record, false);
    }
    this.o.context()?.withdraw(id);
  }

  /**
   * Announce claimable tasks in rendezvous order among the live nodes, with room: those this
   * node is first for now, the others RANK_DELAY_MS per rank later, if still claimable then.
   * A node is first for a task when it ranks first among the nodes that still have room below
   * their share (see rendezvousRanksWithRoom). Without a list of live nodes, all at once in
   * random order. `except` (the node that just gave these tasks up) is left out of the order;
   * when that is this node, it comes last.
   */
  private announceRanked(all: Readonly<TaskRecord>[], except?: string): void {
    // Claimed or deleted later in the same response: not to be given to anyone (a task given
    // out stays counted against its node's room until an owner or delete event of its own).
    const records = all.filter((r) => r.exists && !r.owner);
    const live = this.o.liveNodes?.();
    if (!live) {
      for (const record of shuffle(records)) this.announceIfClaimable(record);
      return;
    }
    const candidates = except !== undefined && live.includes(except) ? live.filter((n) => n !== except) : live;
    const ranks = rendezvousRanksWithRoom(
      records,
      taskId,
      this.o.node,
      candidates,
      this.roomFor(live, candidates, except),
      (record, n) => this.promise(record, n),
    );
    const now = Date.now();
    if (except === this.o.node && candidates.length > 0) {
      // Given up by this node (released to be run elsewhere): it tries them last.
      this.delay(candidates.length, records, now);
      this.armDelayed();
      return;
    }
    for (const record of ranks[0] ?? []) this.announceIfClaimable(record, 0);
    for (let r = 1; r < ranks.length; r++) {
      const group = ranks[r]!;
      if (group.length === 0) continue;
      this.delay(r, group, now);
    }
    this.armDelayed();
  }

  /**
   * Tasks each candidate may still be given before it reaches its share: ceil(all tasks of the
   * live nodes and unclaimed ones / live nodes), less what it owns and what went to it first
   * earlier and is not claimed yet. The node that gave these tasks up counts towards the share
   * while it still owns tasks (a rebalance); with none left it is dead or gone, its marker's
   * delete still on its way.
   */
  private roomFor(live: readonly string[], candidates: readonly string[], except?: string): Map<string, number> {
    const table = this.table;
    const shareNodes = except !== undefined && table.ownerCount(except) === 0 ? candidates : live;
    let total = this.o.unclaimedCount?.() ?? table.unclaimedCount();
    for (const n of shareNodes) total += table.ownerCount(n);
    const target = Math.ceil(total / Math.max(1, shareNodes.length));
    const room = new Map<string, number>();
    for (const n of candidates) room.set(n, Math.max(0, target - table.ownerCount(n) - (this.promised.get(n) ?? 0)));
    return room;
  }

  private promise(record: Readonly<TaskRecord>, node: string): void {
    this.unpromise(record);
    this.table.setAssignee(record, node);
    this.promised.set(node, (this.promised.get(node) ?? 0) + 1);
  }

  /** The task is claimed or gone: no longer counted against its first node's room. */
  private unpromise(record: Readonly<TaskRecord> | undefined): void {
    const node = record?.assignee;
    if (node === undefined) return;
    this.table.setAssignee(record!, undefined);
    const left = (this.promised.get(node) ?? 1) - 1;
    if (left > 0) this.promised.set(node, left);
    else this.promised.delete(node);
  }

  /**
   * Announce the task if it is claimable now. `record` comes from `table`; once a listing has
   * replaced that table, the task is looked up again. (A record dropped from its table, its
   * task deleted, says not claimable: if the task was submitted again, its new record was
   * announced on its own.)
   */
  private announceIfClaimable(record: Readonly<TaskRecord>, rank = 0, table = this.table): void {
    const current = table === this.table ? record : this.table.get(record.id);
    if (current?.exists && !current.owner) this.announce(current, rank);
  }

  /** Queue tasks of rank r (≥ 1) to be announced r × RANK_DELAY_MS from `now`. */
  private delay(rank: number, records: Readonly<TaskRecord>[], now: number): void {
    const queue = (this.delayed[rank - 1] ??= { groups: [], head: 0, heldUntil: 0 });
    queue.groups.push({ due: now + rank * RANK_DELAY_MS, rank, records, table: this.table });
  }

  /** When the first group of a rank's queue may be announced (each queue is in due order). */
  private static nextDue(queue: RankQueue): number {
    const first = queue.groups[queue.head];
    return first ? Math.max(first.due, queue.heldUntil) : Infinity;
  }

  /** One timer for the earliest delayed group. */
  private armDelayed(): void {
    let earliest = Infinity;
    for (const queue of this.delayed) if (queue) earliest = Math.min(earliest, TaskView.nextDue(queue));
    if (earliest === Infinity || earliest >= this.delayedAt) return;
    if (this.delayedTimer) clearTimeout(this.delayedTimer);
    this.delayedAt = earliest;
    this.delayedTimer = setTimeout(() => this.fireDelayed(), Math.max(0, earliest - Date.now()));
    (this.delayedTimer as { unref?: () => void }).unref?.();
  }

  private fireDelayed(): void {
    this.delayedTimer = undefined;
    this.delayedAt = Infinity;
    const now = Date.now();
    const busy = (this.o.context()?.pendingClaims?.() ?? 0) > HOLD_BACK_PENDING;
    for (const queue of this.delayed) {
      if (!queue || TaskView.nextDue(queue) > now) continue;
      if (busy) {
        // Every due group of this rank waits another step (one time for the whole queue:
        // walking each group here cost a busy node 4 % of its CPU at 100,000 tasks).
        queue.heldUntil = now + RANK_DELAY_MS;
        continue;
      }
      const { groups } = queue;
      while (queue.head < groups.length && groups[queue.head]!.due <= now) {
        const group = groups[queue.head++]!;
        for (const record of group.records) this.announceIfClaimable(record, group.rank, group.table);
      }
      if (queue.head === groups.length) {
        groups.length = 0;
        queue.head = 0;
      } else if (queue.head > 1024 && queue.head * 2 > groups.length) {
        groups.splice(0, queue.head);
        queue.head = 0;
      }
    }
    this.armDelayed();
  }

  /** Forget delayed announcements (the coordinator closed). */
  close(): void {
    if (this.delayedTimer) clearTimeout(this.delayedTimer);
    this.delayedTimer = undefined;
    this.delayedAt = Infinity;
    this.delayed.length = 0;
  }

  private announce(record: Readonly<TaskRecord>, rank = 0): void {
    const id = record.id;
    const props = parseProps(record.propsRaw);
    if (!props.ok) {
      this.warnOnce(
        `props ${id} ${record.propsRevision}`,
        `skipping task ${id}: props at ${this.o.keys.props(id)} are ${props.error}`,
      );
      return;
    }
    try {
      this.table.setAnnounced(record, true);
      this.o.context()?.announce({ id, props: props.props }, rank);
    } catch (err) {
      this.o.log.error(`consumer announce(${id}) failed: ${describeError(err)}`);
    }
  }

  private warnMalformedOwner(id: string, raw: string, revision: number): void {
    this.warnOnce(
      `owner ${id} ${revision}`,
      `owner value at ${this.o.keys.owner(id)} is not {"node": string} (${JSON.stringify(raw.slice(0, 100))}); treating the task as claimed by someone else`,
    );
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    if (this.warned.size > 10_000) this.warned.clear();
    this.warned.add(key);
    this.o.log.warn(message);
  }
}

/** Delayed announcements of one rank: groups in due order from `head` on. */
interface RankQueue {
  readonly groups: { due: number; rank: number; records: Readonly<TaskRecord>[]; table: TaskTable }[];
  head: number;
  /** While the consumer had plenty to try, the whole queue waits until then. */
  heldUntil: number;
}

const taskId = (record: Readonly<TaskRecord>): string => record.id;

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
