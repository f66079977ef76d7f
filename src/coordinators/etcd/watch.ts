/**
 * A live mirror of one etcd prefix: ONE listing (paginated, all pages at the same revision),
 * then a watch from the next revision, so no change is missed or seen twice. Whenever the
 * watch is in doubt (compacted past our revision, canceled, stream error or end, etcd
 * restarted) the mirror lists again and hands the listener a fresh snapshot to reconcile
 * against; it retries with back-off until etcd answers and never throws out of a callback.
 *
 * We drive etcd's watch stream directly instead of etcd3's Watcher: the Watcher resumes after
 * a reconnect from the header revision of the last response, which can skip events, and it
 * reports compaction only as an anonymous error.
 */
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { GRPCOutOfRangeError, Range, type Etcd3 } from "etcd3";
import { describeError, errorLine } from "../../errors.ts";
import type { Logger } from "../../types.ts";
import { closeStream } from "./lease.ts";
import { FIRST_PAGE_KEYS, nextPageSize } from "./listing-pages.ts";
import { retryDelay, sleep } from "./timing.ts";
import type { DecodedWatchResponse, MirrorEvent, MirrorKv } from "./wire/kv-decode.ts";
import { openWatchStream, rangeDecoded, type WatchStream } from "./wire/raw-calls.ts";

export type { MirrorEvent, MirrorKv } from "./wire/kv-decode.ts";

export interface MirrorListener {
  /** Everything under the prefix at `revision`: the first listing, or a relist after trouble. */
  snapshot(kvs: MirrorKv[], revision: number, reason: string): void;
  /** Changes after the last snapshot, in revision order. */
  events(events: MirrorEvent[]): void;
  /**
   * Optional streamed form of snapshot(), for big prefixes: the listing's pages are handed to
   * the sink as they arrive (and dropped), so the whole listing is never held at once; commit
   * ends it. A listing that fails halfway is abandoned (the sink is dropped, never committed).
   */
  beginSnapshot?(): SnapshotSink;
}

export interface SnapshotSink {
  page(kvs: readonly MirrorKv[]): void;
  commit(revision: number, reason: string): void;
}

export interface PrefixMirrorOptions {
  readonly etcd: Etcd3;
  /** With trailing slash, e.g. "/ns/tasks/". */
  readonly prefix: string;
  readonly listener: MirrorListener;
  readonly log: Logger;
  /** Deadline for each listing page, ms. */
  readonly requestTimeout: number;
  /** Keys per listing page; by default pages start small and grow (see nextPageSize). */
  readonly pageSize?: number;
  /** Events handed to the listener per event-loop turn (default EVENTS_PER_TURN). */
  readonly eventsPerTurn?: number;
  /** Called whenever the mirror relists, with why (for metrics and tests). */
  readonly onResync?: (reason: string) => void;
  /**
   * Test seam: awaited after each listing and before its watch starts, so a test can make
   * changes (and compact them away) in the gap the watch must cover.
   */
  readonly afterList?: (revision: number) => Promise<void>;
}

/** Attempts per listing page before the listing as a whole fails (and starts over). */
const PAGE_ATTEMPTS = 4;
/** A page asked for again is halved, down to this many keys. */
const MIN_RETRY_PAGE_KEYS = 1000;

/** Watch events handed to the listener per event-loop turn. */
const EVENTS_PER_TURN = 2000;

export class PrefixMirror {
  /** Highest revision reflected in what the listener has been told. */
  revision = 0;
  /** Revision of the last listing: events at or below it are already in that snapshot. */
  private snapshotRevision = 0;
  private stream: WatchStream | undefined;
  private generation = 0;
  private syncing = false;
  private pendingReason: string | undefined;
  private closed = false;
  private readonly range: Range;
  /** Received events not yet handed to the listener (see drain), oldest first. */
  private readonly backlog: MirrorEvent[][] = [];
  private backlogOffset = 0;
  private drainScheduled = false;

  private readonly eventsPerTurn: number;

  constructor(private readonly options: PrefixMirrorOptions) {
    this.range = Range.prefix(options.prefix);
    this.eventsPerTurn = Math.max(1, options.eventsPerTurn ?? EVENTS_PER_TURN);
  }

  /** First listing and watch. Rejects when etcd cannot be listed (the caller decides). */
  async start(): Promise<void> {
    await this.listAndWatch("initial listing");
  }

  /** List again and reconcile (coalesced; retried until etcd answers or close). */
  resync(reason: string): void {
    if (this.closed) return;
    this.dropWatch();
    if (this.syncing) {
      this.pendingReason = reason;
      return;
    }
    void this.syncLoop(reason);
  }

  close(): void {
    this.closed = true;
    this.dropWatch();
  }

  private async syncLoop(firstReason: string): Promise<void> {
    this.syncing = true;
    let reason = firstReason;
    let attempt = 0;
    this.options.onResync?.(reason);
    try {
      while (!this.closed) {
        try {
          await this.listAndWatch(reason);
          attempt = 0;
          if (this.pendingReason === undefined) return;
          reason = this.pendingReason;
          this.pendingReason = undefined;
          this.options.onResync?.(reason);
          this.dropWatch();
        } catch (err) {
          attempt++;
          const level = attempt === 1 ? "warn" : "debug";
          this.options.log[level](
            `cannot list ${this.options.prefix} (attempt ${attempt}), retrying: ${errorLine(err)}`,
          );
          this.dropWatch();
          await sleep(retryDelay(attempt));
        }
      }
    } finally {
      this.syncing = false;
    }
  }

  private async listAndWatch(reason: string): Promise<void> {
    const listener = this.options.listener;
    const sink = listener.beginSnapshot?.();
    const collected: MirrorKv[] = [];
    const revision = await this.list((kvs) => {
      if (sink) sink.page(kvs);
      else for (const kv of kvs) collected.push(kv);
    });
    if (this.closed) return;
    this.revision = revision;
    this.snapshotRevision = revision;
    try {
      if (sink) sink.commit(revision, reason);
      else listener.snapshot(collected, revision, reason);
    } catch (err) {
      this.options.log.error(`snapshot of ${this.options.prefix} failed in its listener: ${describeError(err)}`);
    }
    await this.options.afterList?.(revision);
    if (this.closed) return;
    await this.openWatch(revision + 1);
  }

  /** List the prefix page by page, every page at the first page's revision; resolves that revision. */
  private async list(onPage: (kvs: MirrorKv[]) => void): Promise<number> {
    const { etcd, requestTimeout } = this.options;
    let pageSize = this.options.pageSize ?? FIRST_PAGE_KEYS;
    let start = this.range.start;
    let revision: number | undefined;
    for (;;) {
      let res;
      for (let attempt = 1; ; attempt++) {
        try {
          res = await rangeDecoded(
            etcd,
            {
              key: start,
              range_end: this.range.end,
              limit: pageSize,
              ...(revision ? { revision: String(revision) } : {}),
            },
            { deadline: Date.now() + requestTimeout },
          );
          break;
        } catch (err) {
          // A page that did not come in time is asked for again, at the same revision and
          // smaller, rather than throwing away the pages already applied: at 100,000 tasks a
          // relist from the start is the very load that made etcd slow. Out of range (the
          // revision was compacted meanwhile) cannot succeed: the listing starts over.
          if (this.closed || attempt >= PAGE_ATTEMPTS || err instanceof GRPCOutOfRangeError) throw err;
          if (this.options.pageSize === undefined) pageSize = Math.max(MIN_RETRY_PAGE_KEYS, Math.floor(pageSize / 2));
          this.options.log.debug(
            `listing page of ${this.options.prefix} failed (attempt ${attempt}), asking again for ${pageSize} keys: ${errorLine(err)}`,
          );
          await sleep(retryDelay(attempt));
        }
      }
      if (this.closed) return res.revision;
      revision ??= res.revision;
      onPage(res.kvs);
      if (this.options.pageSize === undefined) pageSize = nextPageSize(pageSize, res.kvs);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      start = Buffer.concat([Buffer.from(last.key), Buffer.from([0])]);
    }
    return revision;
  }

  private async openWatch(fromRevision: number): Promise<void> {
    const stream = await openWatchStream(this.options.etcd);
    if (this.closed) {
      closeStream(stream);
      return;
    }
    this.dropWatch();
    const generation = this.generation;
    this.stream = stream;
    stream.on("data", (res) => {
      if (generation !== this.generation) return;
      try {
        this.onResponse(res);
      } catch (err) {
        // Never let a listener bug escape into grpc's stream (etcd3 would rethrow it).
        this.options.log.error(`watch of ${this.options.prefix} failed handling a response: ${describeError(err)}`);
      }
    });
    stream.on("error", (err) => {
      if (generation === this.generation) this.resync(`watch stream failed: ${err.message}`);
    });
    stream.on("end", () => {
      if (generation === this.generation) this.resync("watch stream ended");
    });
    stream.write({
      create_request: { key: this.range.start, range_end: this.range.end, start_revision: fromRevision },
    });
  }

  private onResponse(res: DecodedWatchResponse): void {
    if (res.canceled) {
      this.resync(
        res.compactRevision > 0
          ? `compacted: etcd history starts at revision ${res.compactRevision}`
          : `watch canceled by etcd: ${res.cancelReason || "no reason given"}`,
      );
      return;
    }
    if (res.created || res.events.length === 0) return;
    let events: MirrorEvent[] = res.events;
    if (events[0]!.kv.modRevision <= this.snapshotRevision)
      events = events.filter((ev) => ev.kv.modRevision > this.snapshotRevision); // already in the snapshot
    if (events.length === 0) return;
    if (this.backlog.length === 0 && events.length <= this.eventsPerTurn) this.deliver(events);
    else {
      this.backlog.push(events);
      this.scheduleDrain();
    }
  }

  /**
   * Hand queued events to the listener, at most EVENTS_PER_TURN per event-loop turn, in order.
   * A slow watcher gets up to a thousand revisions per response from etcd (64,000 events when
   * each revision is a batch of claims); applied in one go they kept a node's event loop busy
   * long enough to miss its own keepalive answers. In slices, timers and I/O run in between.
   */
  private drain(): void {
    this.drainScheduled = false;
    let budget = this.eventsPerTurn;
    while (budget > 0 && this.backlog.length > 0) {
      const head = this.backlog[0]!;
      const take = Math.min(budget, head.length - this.backlogOffset);
      const slice = take === head.length ? head : head.slice(this.backlogOffset, this.backlogOffset + take);
      this.backlogOffset += take;
      budget -= take;
      if (this.backlogOffset >= head.length) {
        this.backlog.shift();
        this.backlogOffset = 0;
      }
      this.deliver(slice);
    }
    if (this.backlog.length > 0) this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    const generation = this.generation;
    // A drain scheduled for a dropped watch does nothing (dropWatch already reset the flag).
    setImmediate(() => {
      if (generation === this.generation) this.drain();
    });
  }

  private deliver(events: MirrorEvent[]): void {
    this.revision = Math.max(this.revision, events[events.length - 1]!.kv.modRevision);
    try {
      this.options.listener.events(events);
    } catch (err) {
      // Never let a listener bug escape into grpc's stream (etcd3 would rethrow it).
      this.options.log.error(`watch of ${this.options.prefix} failed handling a response: ${describeError(err)}`);
    }
  }

  private dropWatch(): void {
    this.generation++;
    // Events not yet applied belong to the old watch: the next listing supersedes them.
    this.backlog.length = 0;
    this.backlogOffset = 0;
    this.drainScheduled = false;
    const stream = this.stream;
    this.stream = undefined;
    if (stream) closeStream(stream);
  }
}
