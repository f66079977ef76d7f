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
}

/** Claims per transaction: two compares each, within etcd's default --max-txn-ops of 128. */
const CLAIM_BATCH = 64;
/** Releases per transaction, likewise. */
const RELEASE_BATCH = 64;

interface PendingClaim {
  readonly id: string;
  readonly lease: NodeLease;
  readonly resolve: (token: number | undefined) => void;
}

interface PendingRelease {
  readonly id: string;
  readonly token: number;
  readonly resolve: () => void;
}

export class ClaimOps {
  private readonly claimQueue: PendingClaim[] = [];
  private claimsInFlight = false;
  private readonly releaseQueue: PendingRelease[] = [];
  private releaseFlush: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly o: ClaimOpsOptions) {}

  /**
   * Claim a task on `lease`; resolves the fencing token (the owner key's create revision), or
   * undefined when someone else owns it, it does not exist, or etcd did not answer.
   * Claims go to etcd one transaction at a time; those asked for while one is in flight share
   * the next transaction, up to CLAIM_BATCH. One at a time, this is exactly Go's claim.
   */
  claim(id: string, lease: NodeLease): Promise<number | undefined> {
    return new Promise((resolve) => {
      this.claimQueue.push({ id, lease, resolve });
      if (!this.claimsInFlight) void this.pumpClaims();
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
        { compare: token !== undefined ? this.ownerFence(id, token) : [unowned], success: deletes, failure: [{ request_range: { key: ownerKey } }] },
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

  /** An owner key with our name that no claim of ours accounts for: delete it. */
  async releaseIfOrphan(id: string, createRevision?: number): Promise<void> {
    if (!this.o.alive() || this.o.isHeld(id)) return;
    try {
      const res = await this.o.etcd.kv.range({ key: Buffer.from(this.o.keys.owner(id)) }, this.callOptions());
      const kv = res.kvs[0];
      if (!kv || kv.value.toString() !== this.o.ownerValue) return;
      const rev = Number(kv.create_revision);
      if ((createRevision !== undefined && rev !== createRevision) || this.o.isHeld(id)) return;
      this.o.log.info(`releasing a claim on ${id} that this node holds but does not run`);
      await this.deleteOwner(id, rev);
    } catch (err) {
      this.o.log.debug(`orphan check of ${id} failed: ${errorLine(err)}`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Claims

  private async pumpClaims(): Promise<void> {
    this.claimsInFlight = true;
    try {
      while (this.claimQueue.length > 0) {
        const batch = this.claimQueue.splice(0, CLAIM_BATCH);
        const lease = this.o.activeLease();
        const current = batch.filter((c) => c.lease === lease);
        for (const c of batch) if (c.lease !== lease) c.resolve(undefined);
        if (current.length === 1) current[0]!.resolve(await this.claimOne(current[0]!.id, current[0]!.lease));
        else if (current.length > 1) await this.claimMany(current);
        // Claimants that just got their answer usually ask again at once (a consumer's claim
        // workers do): let them join the next transaction. Sending it straight away would split
        // them into two halves taking turns, twice the transactions for the same claims.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.claimsInFlight = false;
    }
  }

  /** Go's claim (docs/wire-format.md): owner absent AND task present → owner on our lease. */
  private async claimOne(id: string, lease: NodeLease): Promise<number | undefined> {
    try {
      const res = await this.o.etcd.kv.txn(
        {
          compare: this.claimConditions(id),
          success: [this.ownerPut(id, lease)],
          failure: [{ request_range: { key: Buffer.from(this.o.keys.owner(id)) } }],
        },
        this.callOptions(),
      );
      if (res.succeeded) return Number(res.header.revision);
      // etcd3 retries failed requests; an earlier attempt of this very claim may have won.
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv && kv.lease === lease.id && kv.value.toString() === this.o.ownerValue) return Number(kv.create_revision);
    } catch (err) {
      this.o.log.debug(`claim of ${id} failed: ${errorLine(err)}`);
      // The txn may have landed even though we got no answer: check later, release if so.
      setTimeout(() => void this.releaseIfOrphan(id), 1000);
    }
    return undefined;
  }

  /**
   * Several claims in one transaction. All conditions must hold for it to succeed; when one
   * does not, the failure branch reads every owner and task key, the claims that cannot win
   * are dropped, and the rest are tried again together. The failure branch reads the very
   * state that failed the compare, so every failed round settles at least one claim: the
   * rounds are bounded by the batch size. (Falling back to one transaction per claim after a
   * few rounds stalled every later claim of this node behind them while another node raced
   * it for the same tasks.)
   */
  private async claimMany(batch: PendingClaim[]): Promise<void> {
    let remaining = batch;
    while (remaining.length > 1) {
      const lease = remaining[0]!.lease;
      let res;
      try {
        res = await this.o.etcd.kv.txn(
          {
            compare: remaining.flatMap((c) => this.claimConditions(c.id)),
            success: remaining.map((c) => this.ownerPut(c.id, lease)),
            failure: remaining.flatMap((c) => [
              { request_range: { key: Buffer.from(this.o.keys.owner(c.id)) } },
              { request_range: { key: Buffer.from(this.o.keys.task(c.id)), count_only: true } },
            ]),
          },
          this.callOptions(),
        );
      } catch (err) {
        this.o.log.debug(`claim of ${remaining.length} tasks failed: ${errorLine(err)}`);
        for (const c of remaining) {
          setTimeout(() => void this.releaseIfOrphan(c.id), 1000);
          c.resolve(undefined);
        }
        return;
      }
      if (res.succeeded) {
        for (const c of remaining) c.resolve(Number(res.header.revision));
        return;
      }
      const next: PendingClaim[] = [];
      remaining.forEach((c, i) => {
        const owner = res.responses[2 * i]?.response_range?.kvs[0];
        const taskExists = Number(res.responses[2 * i + 1]?.response_range?.count ?? 0) > 0;
        if (owner) {
          const ours = owner.lease === lease.id && owner.value.toString() === this.o.ownerValue;
          c.resolve(ours ? Number(owner.create_revision) : undefined);
        } else if (!taskExists) c.resolve(undefined);
        else next.push(c);
      });
      if (next.length === remaining.length) {
        // Cannot happen with a well-behaved etcd; never loop on it.
        this.o.log.warn(`claim of ${remaining.length} tasks failed without a reason etcd reported; claiming them one by one`);
        for (const c of next) c.resolve(await this.claimOne(c.id, c.lease));
        return;
      }
      remaining = next;
    }
    for (const c of remaining) c.resolve(await this.claimOne(c.id, c.lease));
  }

  private claimConditions(id: string): ICompare[] {
    return [
      { key: Buffer.from(this.o.keys.owner(id)), target: "Version", result: "Equal", version: 0 },
      { key: Buffer.from(this.o.keys.task(id)), target: "Version", result: "Greater", version: 0 },
    ];
  }

  private ownerPut(id: string, lease: NodeLease): IRequestOp {
    return { request_put: { key: Buffer.from(this.o.keys.owner(id)), value: Buffer.from(this.o.ownerValue), lease: lease.id } };
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
      await this.o.etcd.kv.txn({ compare: this.ownerFence(id, token), success: [{ request_delete_range: { key: owner } }] }, this.callOptions());
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

  private async retryInBackground(what: string, op: () => Promise<void>): Promise<void> {
    const lease = this.o.activeLease();
    for (let attempt = 2; attempt < 30; attempt++) {
      await sleep(retryDelay(attempt));
      // Once the lease changed, the old lease's revoke has already ended the claim.
      if (!this.o.alive() || this.o.activeLease() !== lease) return;
      try {
        await op();
        return;
      } catch (err) {
        this.o.log.debug(`could not ${what} yet: ${errorLine(err)}`);
      }
    }
    this.o.log.error(`gave up trying to ${what}`);
  }
}
