/**
 * The node's model of every task in the namespace, built from the tasks/ watch: whether the
 * task key exists, its props, and its owner (node, owner key create revision = fencing token,
 * lease). It keeps per-node owner counts and the unclaimed count up to date on every change,
 * so the balancer's cluster view costs O(nodes) however many tasks there are.
 */
import type { TaskProps } from "../../types.ts";
import { decodeOwner, type Keys } from "./keys.ts";
import type { MirrorKv } from "./watch.ts";

export interface OwnerRecord {
  /** Owning node; undefined when the value is not {"node": string} (treated as someone else). */
  readonly node: string | undefined;
  readonly raw: string;
  /** Create revision of the owner key: the claim's fencing token. */
  readonly createRevision: number;
  readonly lease: string;
}

export interface TaskRecord {
  readonly id: string;
  /** The task key `tasks/T` exists. */
  exists: boolean;
  /** Raw props value, undefined when the props key is absent. */
  propsRaw: string | undefined;
  /** Mod revision of the props key (to warn once per malformed value). */
  propsRevision: number;
  owner: OwnerRecord | undefined;
  /**
   * Announced to the consumer since it was last withdrawn. Most tasks another node claims were
   * never announced here (a later rank, still delayed): their withdraw is skipped.
   */
  announced: boolean;
  /**
   * The node this task went to first when it was last announced (see rendezvousRanksWithRoom),
   * until it is claimed or deleted: counted against that node's room in later batches.
   */
  assignee: string | undefined;
}

export type ParsedProps = { ok: true; props: TaskProps } | { ok: false; error: string };

/** Props as Go and we write them: absent or "" (Go's default task) → {}; otherwise a JSON object. */
export function parseProps(raw: string | undefined): ParsedProps {
  if (raw === undefined || raw.trim() === "") return { ok: true, props: {} };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `not JSON (${(err as Error).message})` };
  }
  if (value === null) return { ok: true, props: {} };
  if (typeof value !== "object" || Array.isArray(value)) return { ok: false, error: "not a JSON object" };
  return { ok: true, props: value as TaskProps };
}

/**
 * Owner values are few distinct strings (one per node), each seen once per task: decode each
 * once, and let every record share one copy of the value and the node name.
 */
const ownerCache = new Map<string, { node: string | undefined; raw: string }>();
const OWNER_CACHE_LIMIT = 4096;

function cachedOwner(raw: string): { node: string | undefined; raw: string } {
  let entry = ownerCache.get(raw);
  if (!entry) {
    if (ownerCache.size >= OWNER_CACHE_LIMIT) ownerCache.clear();
    entry = { node: decodeOwner(raw), raw };
    ownerCache.set(raw, entry);
  }
  return entry;
}

export function ownerRecord(kv: MirrorKv): OwnerRecord {
  const { node, raw } = cachedOwner(kv.value);
  return { node, raw, createRevision: kv.createRevision, lease: kv.lease };
}

export class TaskTable {
  private readonly records = new Map<string, TaskRecord>();
  private readonly owners = new Map<string, number>();
  private unclaimed = 0;

  /** Build from a listing of the tasks/ prefix. */
  static fromSnapshot(kvs: readonly MirrorKv[], keys: Keys): TaskTable {
    const table = new TaskTable();
    table.addListed(kvs, keys);
    return table;
  }

  /** Add keys of a listing of the tasks/ prefix (one page of it). */
  addListed(kvs: readonly MirrorKv[], keys: Keys): void {
    for (const kv of kvs) {
      const parsed = keys.parseTaskKey(kv.key);
      if (!parsed) continue;
      if (parsed.part === "task") this.setExists(parsed.id, true);
      else if (parsed.part === "props") this.setProps(parsed.id, kv.value, kv.modRevision);
      else if (parsed.part === "owner") this.setOwner(parsed.id, ownerRecord(kv));
    }
  }

  get(id: string): Readonly<TaskRecord> | undefined {
    return this.records.get(id);
  }

  all(): IterableIterator<Readonly<TaskRecord>> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  // Every watch event lands in one of these three: no closure, no allocation unless a record
  // is new, and counts touched only when what they count changes. Each returns the record as
  // it is now (undefined once empty), which saves the caller another lookup.

  setExists(id: string, exists: boolean): Readonly<TaskRecord> | undefined {
    const r = this.record(id);
    if (r.exists !== exists) {
      this.count(r, -1);
      r.exists = exists;
      this.count(r, +1);
    }
    return this.dropIfEmpty(r);
  }

  setProps(id: string, raw: string | undefined, revision: number): Readonly<TaskRecord> | undefined {
    const r = this.record(id);
    r.propsRaw = raw;
    r.propsRevision = revision;
    return this.dropIfEmpty(r);
  }

  /** The owner the last setOwner call replaced (read right after it: saves the caller a lookup). */
  replacedOwner: OwnerRecord | undefined;

  setOwner(id: string, owner: OwnerRecord | undefined): Readonly<TaskRecord> | undefined {
    const r = this.record(id);
    this.replacedOwner = r.owner;
    this.count(r, -1);
    r.owner = owner;
    this.count(r, +1);
    return this.dropIfEmpty(r);
  }

  /** Record whether the consumer has been told of this task (see TaskRecord.announced). */
  setAnnounced(record: Readonly<TaskRecord>, announced: boolean): void {
    (record as TaskRecord).announced = announced;
  }

  /** Record which node the task went to first (see TaskRecord.assignee). */
  setAssignee(record: Readonly<TaskRecord>, node: string | undefined): void {
    (record as TaskRecord).assignee = node;
  }

  /** Tasks owned by `node` (valid owner values only). */
  ownerCount(node: string): number {
    return this.owners.get(node) ?? 0;
  }

  /** Tasks whose key exists and that nobody owns. */
  unclaimedCount(): number {
    return this.unclaimed;
  }

  private record(id: string): TaskRecord {
    let record = this.records.get(id);
    if (!record) {
      record = {
        id,
        exists: false,
        propsRaw: undefined,
        propsRevision: 0,
        owner: undefined,
        announced: false,
        assignee: undefined,
      };
      this.records.set(id, record);
    }
    return record;
  }

  /** The record, or undefined when it held nothing any more and was dropped. */
  private dropIfEmpty(record: TaskRecord): TaskRecord | undefined {
    if (record.exists || record.propsRaw !== undefined || record.owner) return record;
    this.records.delete(record.id);
    return undefined;
  }

  private count(r: TaskRecord, sign: 1 | -1): void {
    if (r.exists && !r.owner) this.unclaimed += sign;
    const node = r.owner?.node;
    if (node !== undefined) {
      const next = (this.owners.get(node) ?? 0) + sign;
      if (next === 0) this.owners.delete(node);
      else this.owners.set(node, next);
    }
  }
}
