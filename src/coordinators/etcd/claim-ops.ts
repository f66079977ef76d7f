/**
 * The etcd writes of a claim's life: claim, release (fenced) and done (docs/wire-format.md,
 * fenced, exact keys). Concurrent claims share transactions, and so do concurrent releases:
 * a node that starts with a backlog, or hands everything back at shutdown, costs etcd a few
 * transactions instead of one per task. Failures are retried; a release that keeps failing is
 * retried in the background, since an owner key left behind blocks the task until the lease
 * ends.
 */
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { Range, type Etcd3, type ICompare, type IRequestOp } from "etcd3";
import { ClaimLostError, errorLine } from "../../errors.ts";
import type { Logger } from "../../types.ts";
import type { Keys } from "./keys.ts";
import type { NodeLease } from "./lease.ts";
import { retryDelay, sleep } from "./timing.ts";
import { txnDecoded } from "./wire/raw-calls.ts";
import type { TxnCompare, TxnOp, TxnOpResponse } from "./wire/txn-codec.ts";

/** The checkpoint value in a claim transaction's range response (undefined: none stored). */
function checkpointIn(response: TxnOpResponse | undefined): string | undefined {
  return response?.kvs[0]?.value;
}

const encoder = new TextEncoder();

interface ClaimKeys {
  readonly owner: Uint8Array;
  readonly task: Uint8Array;
  readonly checkpoint: Uint8Array;
}

export interface ClaimOpsOptions {
  readonly etcd: Etcd3;
  readonly keys: Keys;
  /** This node's owner value, byte-identical to Go's. */
  readonly ownerValue: string;
  readonly requestTimeout: number;
  readonly log: Logger;
  /** The lease new claims go on, or undefined while the node may not claim. */
  activeLease(): NodeLease | undefined;
  /** False once the coordinator has closed: stop retrying. */
  alive(): boolean;
  /** The coordinator holds or is making a claim on this task: not an orphan. */
  isHeld(id: string): boolean;
  /**
   * A claim transaction got no answer; it may have won. Called a second after, when the watch
   * has usually shown its owner key (and if not yet, the event itself reveals the orphan).
   */
  mayHaveLanded(id: string): void;
  /** Test seam: awaited before each claim transaction is sent, with the tasks in it. */
  beforeClaimTxn?(ids: readonly string[]): Promise<void>;
}

/**
 * Claims per transaction: two compares and two operations (owner put, checkpoint read) each,
 * within etcd's default --max-txn-ops of 128 (the limit applies to each list on its own).
 */
export const CLAIM_BATCH = 64;
/**
 * Claim transactions in flight at once. One at a time leaves etcd idle for a round trip
 * between batches; a few in flight keep its raft pipeline busy. 4 × CLAIM_BATCH = 256 claims
 * in flight, the runtime's claim concurrency on etcd.
 */
export const CLAIM_TXNS_IN_FLIGHT = 4;
/** A queue is split over several transactions only into batches at least this big. */
const MIN_SPLIT_BATCH = 16;
/** How long after an unanswered claim transaction the view is asked whether it won. */
const LANDED_CHECK_AFTER_MS = 1000;
/** Longest pause between background retries of a release or done. */
const BACKGROUND_RETRY_MAX_MS = 30_000;
/** Releases per transaction, likewise. */
const RELEASE_BATCH = 64;

/**
 * A won claim: its fencing token and the task's checkpoint as it stood when the claim won (read
 * in the claim's own transaction, so no later write can slip in between). `checkpoint` is
 * `UNKNOWN_CHECKPOINT` in the rare case the claim is recognised after the fact (a retried
 * transaction that had already won): then it has to be read.
 */
export interface ClaimWin {
  readonly token: number;
  readonly checkpoint: string | undefined | typeof UNKNOWN_CHECKPOINT;
}

export const UNKNOWN_CHECKPOINT: unique symbol = Symbol("checkpoint not read");

interface PendingClaim {
  readonly id: string;
  readonly lease: NodeLease;
  readonly resolve: (win: ClaimWin | undefined) => void;
}

interface PendingRelease {
  readonly id: string;
  readonly token: number;
  readonly resolve: () => void;
}

export class ClaimOps {
  private readonly claimQueue: PendingClaim[] = [];
  private claimTxns = 0;
  private claimFlushScheduled = false;
  private readonly releaseQueue: PendingRelease[] = [];
  private releaseFlush: ReturnType<typeof setTimeout> | undefined;

  private readonly ownerBytes: Uint8Array;

  constructor(private readonly o: ClaimOpsOptions) {
    this.ownerBytes = encoder.encode(o.ownerValue);
  }

  /**
   * Claim a task on `lease`; resolves the fencing token (the owner key's create revision) and
   * the checkpoint, or undefined when someone else owns it, it does not exist, or etcd did not
   * answer.
   * Claims asked for in the same event-loop turn share a transaction (up to CLAIM_BATCH), and
   * up to CLAIM_TXNS_IN_FLIGHT transactions are pipelined. One claim alone is exactly
   * Go's claim transaction (docs/wire-format.md), plus a read of the checkpoint key.
   */
  claim(id: string, lease: NodeLease): Promise<ClaimWin | undefined> {
    return new Promise((resolve) => {
      this.claimQueue.push({ id, lease, resolve });
      this.scheduleClaimFlush();
    });
  }

  /** Give a claim back: delete the owner key if it is still exactly this claim. */
  release(id: string, token: number): Promise<void> {
    return new Promise((resolve) => {
      this.releaseQueue.push({ id, token, resolve });
      this.releaseFlush ??= setTimeout(() => this.flushReleases(), 0);
    });
  }

  /**
   * Forget releases not sent yet (their promises resolve): the caller ends the lease, which
   * deletes those owner keys anyway. Returns how many there were.
   */
  dropQueuedReleases(): number {
    const dropped = this.releaseQueue.splice(0);
    if (this.releaseFlush) clearTimeout(this.releaseFlush);
    this.releaseFlush = undefined;
    for (const entry of dropped) entry.resolve();
    return dropped.length;
  }

  /**
   * The task finished: delete `tasks/T` and everything under `tasks/T/` (never the prefix
   * `tasks/T`, Go's bug), only while our claim stands or nobody holds one. A stale owner
   * (lost claim) leaves the task to its new owner.
   */
  async done(id: string, token: number | undefined): Promise<void> {
    const ownerKey = Buffer.from(this.o.keys.owner(id));
    const children = Range.prefix(this.o.keys.taskChildren(id));
    const deletes: IRequestOp[] = [
      { request_delete_range: { key: Buffer.from(this.o.keys.task(id)) } },
      { request_delete_range: { key: children.start, range_end: children.end } },
    ];
    const unowned: ICompare = { key: ownerKey, target: "Version", result: "Equal", version: 0 };
    await this.withRetries(`delete finished task ${id}`, async () => {
      const res = await this.o.etcd.kv.txn(
        {
          compare: token !== undefined ? this.ownerFence(id, token) : [unowned],
          success: deletes,
          failure: [{ request_range: { key: ownerKey } }],
        },
        this.callOptions(),
      );
      if (res.succeeded) return;
      if (!res.responses[0]?.response_range?.kvs[0]) {
        // Our claim ended (lease) before we could delete: nobody owns it, so finish the job.
        const again = await this.o.etcd.kv.txn({ compare: [unowned], success: deletes }, this.callOptions());
        if (again.succeeded) return;
      }
      this.o.log.warn(`task ${id} finished here, but another claim holds it now; leaving it to that owner`);
    });
  }

  /**
   * Store a checkpoint under the task, only while our claim with this token stands. Rejects
   * with ClaimLostError when it does not (nothing is written).
   */
  async checkpoint(id: string, token: number, json: string): Promise<void> {
    const res = await this.o.etcd.kv.txn(
      {
        compare: this.ownerFence(id, token),
        success: [{ request_put: { key: Buffer.from(this.o.keys.checkpoint(id)), value: Buffer.from(json) } }],
      },
      this.callOptions(),
    );
    if (!res.succeeded) throw new ClaimLostError(id, token, "checkpoint");
  }

  /** The task's stored checkpoint (JSON text), if any. */
  async readCheckpoint(id: string): Promise<string | undefined> {
    const res = await this.o.etcd.kv.range({ key: Buffer.from(this.o.keys.checkpoint(id)) }, this.callOptions());
    const kv = res.kvs[0];
    return kv ? kv.value.toString() : undefined;
  }

  /** Compares that hold only while our claim with this token stands unchanged (for fenced writes). */
  fence(id: string, token: number): ICompare[] {
    return this.ownerFence(id, token);
  }

  /**
   * An owner key with our name that no claim of ours accounts for (seen by the watch at this
   * create revision): delete it, fenced by that revision, so a newer claim is never touched.
   */
  async releaseIfOrphan(id: string, createRevision: number): Promise<void> {
    if (!this.o.alive() || this.o.isHeld(id)) return;
    this.o.log.info(`releasing a claim on ${id} that this node holds but does not run`);
    // Through the release queue: orphans come in bunches (a batch of claims without an answer).
    await this.release(id, createRevision);
  }

  // ---------------------------------------------------------------------------------------
  // Claims

  /**
   * Send queued claims after the current turn: claimants that just got their answer usually
   * ask again at once (a consumer's claim workers do), and waiting for the turn to end lets
   * them fill one transaction instead of trickling out one by one.
   */
  private scheduleClaimFlush(): void {
    if (this.claimFlushScheduled || this.claimTxns >= CLAIM_TXNS_IN_FLIGHT || this.claimQueue.length === 0) return;
    this.claimFlushScheduled = true;
    setImmediate(() => {
      this.claimFlushScheduled = false;
      this.flushClaims();
    });
  }

  private flushClaims(): void {
    while (this.claimQueue.length > 0 && this.claimTxns < CLAIM_TXNS_IN_FLIGHT) {
      // Spread what is queued over the free slots rather than one full batch and a runt.
      const free = CLAIM_TXNS_IN_FLIGHT - this.claimTxns;
      const size = Math.min(CLAIM_BATCH, Math.max(MIN_SPLIT_BATCH, Math.ceil(this.claimQueue.length / free)));
      const batch = this.claimQueue.splice(0, size);
      this.claimTxns++;
      void this.sendClaims(batch).finally(() => {
        this.claimTxns--;
        this.scheduleClaimFlush();
      });
    }
  }

  private async sendClaims(batch: PendingClaim[]): Promise<void> {
    const lease = this.o.activeLease();
    const current: PendingClaim[] = [];
    for (const c of batch) {
      if (c.lease === lease) current.push(c);
      else c.resolve(undefined);
    }
    try {
      if (current.length === 1) current[0]!.resolve(await this.claimOne(current[0]!.id, current[0]!.lease));
      else if (current.length > 1) await this.claimMany(current);
    } catch (err) {
      // claimOne/claimMany resolve every claim themselves; this is a bug guard, never a hang.
      this.o.log.error(`claim batch failed: ${errorLine(err)}`);
      for (const c of current) c.resolve(undefined);
    }
  }

  /**
   * Go's claim (docs/wire-format.md): owner absent AND task present → owner on our lease; the
   * same transaction reads the checkpoint.
   */
  private async claimOne(id: string, lease: NodeLease): Promise<ClaimWin | undefined> {
    const keys = this.claimKeys(id);
    try {
      await this.o.beforeClaimTxn?.([id]);
      const res = await txnDecoded(
        this.o.etcd,
        {
          compare: this.claimConditions(keys),
          success: [this.ownerPut(keys, lease), { range: { key: keys.checkpoint } }],
          failure: [{ range: { key: keys.owner } }],
        },
        this.callOptions(),
      );
      if (res.succeeded) return { token: res.revision, checkpoint: checkpointIn(res.responses[1]) };
      // The request may have been sent twice (a retry after a lost answer); the first may have won.
      const kv = res.responses[0]?.kvs[0];
      if (kv && kv.lease === lease.id && kv.value === this.o.ownerValue)
        return { token: kv.createRevision, checkpoint: UNKNOWN_CHECKPOINT };
    } catch (err) {
      this.o.log.debug(`claim of ${id} failed: ${errorLine(err)}`);
      // The txn may have landed even though we got no answer: check later, release if so.
      this.checkLandedLater([id]);
    }
    return undefined;
  }

  /**
   * Several claims in one transaction. All conditions must hold for it to succeed; when one
   * does not, the failure branch reads every owner and task key, the claims that cannot win
   * are dropped, and the rest are tried again, split in two halves sent at once: under
   * contention (nodes racing for the same tasks, after a failover or a deferral) a smaller
   * transaction is less likely to contain the next lost race, so a batch that keeps colliding
   * shrinks towards single claims instead of failing round after round as a whole. The failure
   * branch reads the very state that failed the compare, so every failed transaction settles
   * at least one claim: the transactions are bounded by twice the batch size.
   */
  private async claimMany(batch: PendingClaim[]): Promise<void> {
    let remaining = batch;
    while (remaining.length > 1) {
      const lease = remaining[0]!.lease;
      const keys = remaining.map((c) => this.claimKeys(c.id));
      let res;
      try {
        await this.o.beforeClaimTxn?.(remaining.map((c) => c.id));
        res = await txnDecoded(
          this.o.etcd,
          {
            compare: keys.flatMap((k) => this.claimConditions(k)),
            // Put and checkpoint read per claim: 2 × CLAIM_BATCH ops, etcd's default limit.
            success: keys.flatMap((k) => [this.ownerPut(k, lease), { range: { key: k.checkpoint } }]),
            failure: keys.flatMap((k) => [{ range: { key: k.owner } }, { range: { key: k.task, countOnly: true } }]),
          },
          this.callOptions(),
        );
      } catch (err) {
        this.o.log.debug(`claim of ${remaining.length} tasks failed: ${errorLine(err)}`);
        this.checkLandedLater(remaining.map((c) => c.id));
        for (const c of remaining) c.resolve(undefined);
        return;
      }
      if (res.succeeded) {
        const token = res.revision;
        remaining.forEach((c, i) => c.resolve({ token, checkpoint: checkpointIn(res.responses[2 * i + 1]) }));
        return;
      }
      const next: PendingClaim[] = [];
      remaining.forEach((c, i) => {
        const owner = res.responses[2 * i]?.kvs[0];
        const taskExists = (res.responses[2 * i + 1]?.count ?? 0) > 0;
        if (owner) {
          const ours = owner.lease === lease.id && owner.value === this.o.ownerValue;
          c.resolve(ours ? { token: owner.createRevision, checkpoint: UNKNOWN_CHECKPOINT } : undefined);
        } else if (!taskExists) c.resolve(undefined);
        else next.push(c);
      });
      if (next.length === remaining.length) {
        // Cannot happen with a well-behaved etcd; never loop on it.
        this.o.log.warn(
          `claim of ${remaining.length} tasks failed without a reason etcd reported; claiming them one by one`,
        );
        for (const c of next) c.resolve(await this.claimOne(c.id, c.lease));
        return;
      }
      if (next.length < 4) {
        remaining = next;
        continue;
      }
      const half = Math.ceil(next.length / 2);
      await Promise.all([this.claimMany(next.slice(0, half)), this.claimMany(next.slice(half))]);
      return;
    }
    for (const c of remaining) c.resolve(await this.claimOne(c.id, c.lease));
  }

  /**
   * After a claim transaction without an answer: ask the watch's view, not etcd. A read per
   * claim here was a flood of unary calls exactly when etcd was too slow to answer (hundreds
   * of claims time out together), which made it slower still.
   */
  private checkLandedLater(ids: string[]): void {
    const timer = setTimeout(() => {
      if (!this.o.alive()) return;
      for (const id of ids) this.o.mayHaveLanded(id);
    }, LANDED_CHECK_AFTER_MS);
    (timer as { unref?: () => void }).unref?.();
  }

  /** The keys a claim touches, as bytes (built once per claim, used in both branches). */
  private claimKeys(id: string): ClaimKeys {
    const k = this.o.keys;
    return {
      owner: encoder.encode(k.owner(id)),
      task: encoder.encode(k.task(id)),
      checkpoint: encoder.encode(k.checkpoint(id)),
    };
  }

  private claimConditions(keys: ClaimKeys): TxnCompare[] {
    return [
      { key: keys.owner, target: "version", result: "equal", version: 0 },
      { key: keys.task, target: "version", result: "greater", version: 0 },
    ];
  }

  private ownerPut(keys: ClaimKeys, lease: NodeLease): TxnOp {
    return { put: { key: keys.owner, value: this.ownerBytes, lease: lease.id } };
  }

  // ---------------------------------------------------------------------------------------
  // Releases

  private flushReleases(): void {
    this.releaseFlush = undefined;
    while (this.releaseQueue.length > 0) {
      const batch = this.releaseQueue.splice(0, RELEASE_BATCH);
      void this.releaseBatch(batch).finally(() => {
        for (const entry of batch) entry.resolve();
      });
    }
  }

  private async releaseBatch(batch: PendingRelease[]): Promise<void> {
    if (batch.length === 1) {
      await this.deleteOwner(batch[0]!.id, batch[0]!.token);
      return;
    }
    await this.withRetries(`release ${batch.length} tasks`, async () => {
      const res = await this.o.etcd.kv.txn(
        {
          compare: batch.flatMap((b) => this.ownerFence(b.id, b.token)),
          success: batch.map((b) => ({ request_delete_range: { key: Buffer.from(this.o.keys.owner(b.id)) } })),
        },
        this.callOptions(),
      );
      // Some claim in the batch had already ended (lost, revoked): release the rest one by one.
      if (!res.succeeded) await Promise.all(batch.map((b) => this.deleteOwner(b.id, b.token)));
    });
  }

  /** Delete our owner key, fenced by its create revision (never someone else's newer claim). */
  private async deleteOwner(id: string, token: number): Promise<void> {
    const owner = Buffer.from(this.o.keys.owner(id));
    await this.withRetries(`release ${id}`, async () => {
      await this.o.etcd.kv.txn(
        { compare: this.ownerFence(id, token), success: [{ request_delete_range: { key: owner } }] },
        this.callOptions(),
      );
    });
  }

  /** Compares that hold only while our claim with this token stands unchanged. */
  private ownerFence(id: string, token: number): ICompare[] {
    const owner = Buffer.from(this.o.keys.owner(id));
    return [
      { key: owner, target: "Create", result: "Equal", create_revision: token },
      { key: owner, target: "Value", result: "Equal", value: Buffer.from(this.o.ownerValue) },
    ];
  }

  // ---------------------------------------------------------------------------------------
  // Retries

  private callOptions(): { deadline: number } {
    return { deadline: Date.now() + this.o.requestTimeout };
  }

  /** A few quick attempts, then keep trying in the background while the node is up. */
  private async withRetries(what: string, op: () => Promise<void>): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await op();
        return;
      } catch (err) {
        if (!this.o.alive()) return;
        if (attempt === 2) {
          this.o.log.warn(`could not ${what}, retrying in the background: ${errorLine(err)}`);
          void this.retryInBackground(what, op);
          return;
        }
        await sleep(retryDelay(attempt));
      }
    }
  }

  /**
   * Until it lands, the lease changes (its revoke has ended the claim then) or the node closes.
   * Never given up: an owner key left on a live lease blocks its task for as long as the node
   * lives, and a busy etcd can refuse for minutes (it did, for 28 attempts in a row, in a
   * 100,000-task cluster on two cores). Pauses double up to BACKGROUND_RETRY_MAX_MS.
   */
  private async retryInBackground(what: string, op: () => Promise<void>): Promise<void> {
    const lease = this.o.activeLease();
    for (let attempt = 2; ; attempt++) {
      const pause = Math.min(BACKGROUND_RETRY_MAX_MS, retryDelay(attempt) * 2 ** Math.max(0, attempt - 4));
      await sleep(pause * (0.75 + Math.random() * 0.5)); // jittered: many batches fail together
      // Once the lease changed, the old lease's revoke has already ended the claim.
      if (!this.o.alive() || this.o.activeLease() !== lease) return;
      try {
        await op();
        if (attempt >= 10) this.o.log.info(`could ${what} at last (attempt ${attempt})`);
        return;
      } catch (err) {
        this.o.log[attempt % 10 === 0 ? "warn" : "debug"](
          `could not ${what} yet (attempt ${attempt}): ${errorLine(err)}`,
        );
      }
    }
  }
}
