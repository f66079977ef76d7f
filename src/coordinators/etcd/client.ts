/**
 * The etcd Client: what submitters and operators use (docs/wire-format.md), writing exactly what Go
 * Metafora's client writes, with its bugs fixed: deletes never reach sibling tasks, nodes()
 * works, and tasks() shows owners and fencing tokens.
 */
import { Buffer } from "node:buffer";
import {
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
  Range,
  type Etcd3,
  type IKeyValue,
} from "etcd3";
import { encodeCommand } from "../../command.ts";
import { TaskExistsError } from "../../errors.ts";
import { goJson } from "../../gojson.ts";
import { assertTaskId } from "../../ids.ts";
import { scopedLogger } from "../../log.ts";
import { checkSubmissions, type CheckedSubmission } from "../../submit-batch.ts";
import type { Client, Logger, NodeCommand, SubmitResult, TaskInfo, TaskProps, TaskSubmission } from "../../types.ts";
import { parseEtcdConfig, type EtcdConfig, type EtcdConfigInput } from "./config.ts";
import { connectEtcd } from "./connect.ts";
import { decodeOwner, invalidNodeNameReason, Keys } from "./keys.ts";
import { FIRST_PAGE_KEYS, nextPageSize } from "./listing-pages.ts";
import { parseProps } from "./task-table.ts";

export interface EtcdClientOptions {
  readonly log?: Logger;
  /** Deadline for each request, ms (default 5000). */
  readonly requestTimeout?: number;
}

const decoder = new TextDecoder();

/**
 * Tasks per bulk-submit transaction: each is one compare and two puts, and etcd's default
 * --max-txn-ops (128) bounds each branch of a transaction.
 */
export const SUBMIT_BATCH = 64;
/** Bulk-submit transactions in flight at once. */
const SUBMIT_TXNS_IN_FLIGHT = 8;

/** A random unsigned 64-bit integer in decimal, like Go's rand.Uint64 command keys. */
function randomUint64(): string {
  const buf = new BigUint64Array(1);
  crypto.getRandomValues(buf);
  return String(buf[0]);
}

function encodeProps(t: CheckedSubmission): string {
  try {
    return goJson(t.props);
  } catch (err) {
    throw new TypeError(`props of task ${JSON.stringify(t.id)} cannot be encoded as JSON: ${(err as Error).message}`);
  }
}

export class EtcdClient implements Client {
  private readonly keys: Keys;
  private readonly log: Logger;
  private readonly requestTimeout: number;
  private ownsConnection = false;

  constructor(
    private readonly etcd: Etcd3,
    namespace: string,
    options: EtcdClientOptions = {},
  ) {
    this.keys = new Keys(namespace);
    this.log = options.log ?? scopedLogger(`etcd client ${this.keys.ns}`);
    this.requestTimeout = options.requestTimeout ?? 5000;
  }

  /** A client with its own connection, closed by close(). */
  static connect(
    config: EtcdConfig | EtcdConfigInput,
    options: Omit<EtcdClientOptions, "requestTimeout"> = {},
  ): EtcdClient {
    const parsed = parseEtcdConfig(config);
    const client = new EtcdClient(connectEtcd(parsed), parsed.namespace, {
      ...options,
      requestTimeout: parsed.requestTimeout,
    });
    client.ownsConnection = true;
    return client;
  }

  /** Close the connection if this client opened it. */
  close(): void {
    if (this.ownsConnection) this.etcd.close();
  }

  private get callOptions(): { deadline: number } {
    return { deadline: Date.now() + this.requestTimeout };
  }

  /**
   * Create a task: props JSON and the task key "" in one transaction, only if the props key
   * does not exist (Go's check, so both clients refuse each other's duplicates).
   */
  async submitTask(id: string, props: TaskProps = {}): Promise<void> {
    assertTaskId(id);
    if (props === null || typeof props !== "object" || Array.isArray(props)) {
      throw new TypeError(
        `props of task ${JSON.stringify(id)} must be a plain object, got ${Array.isArray(props) ? "an array" : typeof props}`,
      );
    }
    let json: string;
    try {
      json = goJson(props);
    } catch (err) {
      throw new TypeError(`props of task ${JSON.stringify(id)} cannot be encoded as JSON: ${(err as Error).message}`);
    }
    const propsKey = Buffer.from(this.keys.props(id));
    const res = await this.etcd.kv.txn(
      {
        compare: [{ key: propsKey, target: "Version", result: "Equal", version: 0 }],
        success: [
          { request_put: { key: propsKey, value: Buffer.from(json) } },
          { request_put: { key: Buffer.from(this.keys.task(id)), value: Buffer.alloc(0) } },
        ],
      },
      this.callOptions,
    );
    if (!res.succeeded) throw new TaskExistsError(id);
  }

  /**
   * Create many tasks, SUBMIT_BATCH per transaction, several transactions in flight. Each
   * transaction compares every props key absent and writes what submitTask writes; etcd's
   * compares are all-or-nothing, so when one id is taken the failure branch reads which props
   * keys exist, those are reported "exists" and the rest go again in a new transaction (every
   * failed round settles at least one task). The whole list is checked before anything is sent.
   */
  async submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]> {
    const checked = checkSubmissions(tasks);
    const encoded = checked.map((t) => ({ id: t.id, json: encodeProps(t) }));
    const results = new Map<string, SubmitResult["result"]>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < encoded.length) {
        const batch = encoded.slice(next, next + SUBMIT_BATCH);
        next += SUBMIT_BATCH;
        await this.submitBatch(batch, results);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(SUBMIT_TXNS_IN_FLIGHT, Math.ceil(encoded.length / SUBMIT_BATCH)) }, worker),
    );
    return checked.map((t) => ({ id: t.id, result: results.get(t.id) ?? "exists" }));
  }

  private async submitBatch(
    batch: readonly { id: string; json: string }[],
    results: Map<string, SubmitResult["result"]>,
  ): Promise<void> {
    let remaining = batch;
    // Bounded: every failed round settles at least one task (or stops, see below).
    for (let round = 0; remaining.length > 0 && round <= batch.length; round++) {
      const propsKeys = remaining.map((t) => Buffer.from(this.keys.props(t.id)));
      const res = await this.txnWithRetries({
        compare: propsKeys.map((key) => ({ key, target: "Version" as const, result: "Equal" as const, version: 0 })),
        success: remaining.flatMap((t, i) => [
          { request_put: { key: propsKeys[i]!, value: Buffer.from(t.json) } },
          { request_put: { key: Buffer.from(this.keys.task(t.id)), value: Buffer.alloc(0) } },
        ]),
        failure: propsKeys.map((key) => ({ request_range: { key, count_only: true } })),
      });
      if (res.succeeded) {
        for (const t of remaining) results.set(t.id, "created");
        return;
      }
      const next: { id: string; json: string }[] = [];
      remaining.forEach((t, i) => {
        if (Number(res.responses[i]?.response_range?.count ?? 0) > 0) results.set(t.id, "exists");
        else next.push(t);
      });
      if (next.length === remaining.length) {
        // etcd failed the compare yet reports no key present: never loop on it.
        throw new Error(`bulk submit of ${remaining.length} tasks failed without a reason etcd reported`);
      }
      remaining = next;
    }
  }

  /**
   * A bulk-submit transaction, tried again (a few times, with back-off) when etcd was
   * unavailable or timed out: a loaded etcd does that, and failing a 100,000-task submit for it
   * helps nobody. The transaction only creates absent keys, so a retry is safe; if the first
   * attempt was applied after all, its tasks come back as "exists" (taken, by this very call).
   */
  private async txnWithRetries(
    req: Parameters<Etcd3["kv"]["txn"]>[0],
  ): Promise<Awaited<ReturnType<Etcd3["kv"]["txn"]>>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.etcd.kv.txn(req, this.callOptions);
      } catch (err) {
        const transient =
          err instanceof GRPCUnavailableError ||
          err instanceof GRPCDeadlineExceededError ||
          isRecoverableError(err as Error);
        if (!transient || attempt >= 3) throw err;
        this.log.debug(`bulk submit transaction failed (${(err as Error).message}); trying again`);
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
      }
    }
  }

  /**
   * Delete a task: its key and everything under `tasks/T/` (never the prefix `tasks/T`, which
   * would take `tasks/T1` with it). The owner's watch sees the delete and stops the task.
   */
  async deleteTask(id: string): Promise<boolean> {
    assertTaskId(id);
    const children = Range.prefix(this.keys.taskChildren(id));
    const res = await this.etcd.kv.txn(
      {
        success: [
          { request_delete_range: { key: Buffer.from(this.keys.task(id)) } },
          { request_delete_range: { key: children.start, range_end: children.end } },
        ],
      },
      this.callOptions,
    );
    return res.responses.some((r) => Number(r.response_delete_range?.deleted ?? 0) > 0);
  }

  /** Queue a command for a node under a random key; the node reads them in submission order. */
  async submitCommand(node: string, cmd: NodeCommand): Promise<void> {
    const reason = invalidNodeNameReason(node);
    if (reason) throw new TypeError(reason);
    if (!cmd || typeof cmd.command !== "string" || cmd.command === "") {
      throw new TypeError('a node command needs a non-empty "command" name');
    }
    const key = `${this.keys.nodeCommandsPrefix(node)}${randomUint64()}`;
    await this.etcd.kv.put({ key: Buffer.from(key), value: Buffer.from(encodeCommand(cmd)) }, this.callOptions);
  }

  /** Names of live nodes (those with a registration marker), sorted. */
  async nodes(): Promise<string[]> {
    const range = Range.prefix(this.keys.nodesPrefix);
    const res = await this.etcd.kv.range({ key: range.start, range_end: range.end, keys_only: true }, this.callOptions);
    const names = new Set<string>();
    for (const kv of res.kvs) {
      const parsed = this.keys.parseNodeKey(decoder.decode(kv.key));
      if (parsed?.part === "marker") names.add(parsed.node);
    }
    return [...names].sort();
  }

  /** Every task (whose task key exists), sorted by id, with owner and fencing token. */
  async tasks(): Promise<TaskInfo[]> {
    const byId = new Map<string, { exists: boolean; props?: string; owner?: IKeyValue }>();
    for (const kv of await this.listAll(this.keys.tasksPrefix)) {
      const parsed = this.keys.parseTaskKey(decoder.decode(kv.key));
      if (!parsed || parsed.part === "commands" || parsed.part === "checkpoint") continue;
      let entry = byId.get(parsed.id);
      if (!entry) byId.set(parsed.id, (entry = { exists: false }));
      if (parsed.part === "task") entry.exists = true;
      else if (parsed.part === "props") entry.props = decoder.decode(kv.value);
      else entry.owner = kv;
    }
    const out: TaskInfo[] = [];
    for (const [id, entry] of byId) {
      if (!entry.exists) continue;
      const props = parseProps(entry.props);
      const info: { -readonly [K in keyof TaskInfo]: TaskInfo[K] } = { id, props: props.ok ? props.props : {} };
      if (!props.ok) {
        info.propsError = `props at ${this.keys.props(id)} are ${props.error}, shown as {}; put a JSON object there, or delete the task (metafora delete ${id}) and submit it again`;
        this.log.warn(`task ${id}: ${info.propsError}`);
      }
      if (entry.owner) {
        const raw = decoder.decode(entry.owner.value);
        const owner = decodeOwner(raw);
        if (owner === undefined) {
          const shown = JSON.stringify(raw.length > 40 ? `${raw.slice(0, 37)}...` : raw);
          const lease = String(entry.owner.lease ?? "0");
          info.ownerError =
            lease === "0"
              ? `owner key ${this.keys.owner(id)} holds an unreadable value ${shown} and no lease, so no node can claim the task; delete that key (etcdctl del ${this.keys.owner(id)}) or the task (metafora delete ${id})`
              : `owner key ${this.keys.owner(id)} holds an unreadable value ${shown} on lease ${lease}; the task waits until that lease expires`;
          this.log.warn(`task ${id}: ${info.ownerError}`);
        } else info.owner = owner;
        info.token = Number(entry.owner.create_revision);
      }
      out.push(info);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** All keys under a prefix, paginated, every page at the first page's revision. */
  private async listAll(prefix: string): Promise<IKeyValue[]> {
    let pageSize = FIRST_PAGE_KEYS;
    const range = Range.prefix(prefix);
    const out: IKeyValue[] = [];
    let start = range.start;
    let revision: string | undefined;
    for (;;) {
      const res = await this.etcd.kv.range(
        { key: start, range_end: range.end, limit: pageSize, ...(revision ? { revision } : {}) },
        this.callOptions,
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) out.push(kv);
      pageSize = nextPageSize(pageSize, res.kvs);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return out;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }
}
