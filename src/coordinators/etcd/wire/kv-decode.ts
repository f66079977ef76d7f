/**
 * Decoders for the two etcd responses every node reads in bulk: WatchResponse (every change
 * of the namespace's tasks) and RangeResponse (the paged listing). They read the protobuf
 * bytes straight into the mirror's own records (keys and values as text, revisions as
 * numbers), skipping fields the mirror does not use. Field numbers are etcd's API
 * (etcdserverpb and mvccpb), stable since v3.0.
 */
import type { Buffer } from "node:buffer";
import { InternCache, ProtoReader, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from "./proto-reader.ts";

export interface MirrorKv {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Lease id (decimal string), "0" when none. */
  readonly lease: string;
}

export interface MirrorEvent {
  readonly type: "put" | "delete";
  /** For deletes only key and modRevision are meaningful. */
  readonly kv: MirrorKv;
}

export interface DecodedWatchResponse {
  /** Revision of the store when etcd sent this response (header.revision). */
  readonly revision: number;
  readonly watchId: number;
  readonly created: boolean;
  readonly canceled: boolean;
  /** Set when the watch was canceled because its start revision is compacted. */
  readonly compactRevision: number;
  readonly cancelReason: string;
  readonly events: MirrorEvent[];
}

export interface DecodedRangeResponse {
  readonly revision: number;
  readonly kvs: MirrorKv[];
  readonly more: boolean;
  readonly count: number;
}

/** mvccpb.Event.EventType */
const EVENT_DELETE = 1;

/**
 * Owner values and lease ids repeat on thousands of keys (one of each per node): decoded once,
 * and found again by their bytes, so the events of a big claim or release allocate no new
 * strings for them (allocation, and the garbage collections it brings, is most of a busy
 * node's decoding cost).
 */
const ownerValues = new InternCache();
const leases = new InternCache();

/** mvccpb.KeyValue (also what a transaction's range responses hold: see txn-codec.ts). */
export function decodeKv(r: ProtoReader): MirrorKv {
  let key = "";
  let value = "";
  let createRevision = 0;
  let modRevision = 0;
  let lease = "0";
  while (!r.done) {
    const tag = r.tag();
    switch (tag) {
      case (1 << 3) | WIRE_LENGTH_DELIMITED:
        key = r.string();
        break;
      case (2 << 3) | WIRE_VARINT:
        createRevision = r.varint();
        break;
      case (3 << 3) | WIRE_VARINT:
        modRevision = r.varint();
        break;
      case (5 << 3) | WIRE_LENGTH_DELIMITED:
        // Owner values repeat; props are per task (interning them would only churn the cache).
        value = key.endsWith("/owner") ? r.internedString(ownerValues) : r.string();
        break;
      case (6 << 3) | WIRE_VARINT:
        lease = r.internedInt64Decimal(leases);
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return { key, value, createRevision, modRevision, lease };
}

const EMPTY_KV: MirrorKv = { key: "", value: "", createRevision: 0, modRevision: 0, lease: "0" };

function decodeEvent(r: ProtoReader): MirrorEvent {
  let type: "put" | "delete" = "put";
  let kv = EMPTY_KV;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((1 << 3) | WIRE_VARINT)) type = r.varint() === EVENT_DELETE ? "delete" : "put";
    else if (tag === ((2 << 3) | WIRE_LENGTH_DELIMITED)) kv = decodeKv(r.message());
    else r.skip(tag & 7); // prev_kv (3) is never asked for
  }
  return { type, kv };
}

/** etcdserverpb.ResponseHeader: only the revision. */
function headerRevision(r: ProtoReader): number {
  let revision = 0;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((3 << 3) | WIRE_VARINT)) revision = r.varint();
    else r.skip(tag & 7);
  }
  return revision;
}

export function decodeWatchResponse(buf: Buffer): DecodedWatchResponse {
  const r = new ProtoReader(buf);
  let revision = 0;
  let watchId = 0;
  let created = false;
  let canceled = false;
  let compactRevision = 0;
  let cancelReason = "";
  const events: MirrorEvent[] = [];
  while (!r.done) {
    const tag = r.tag();
    switch (tag) {
      case (1 << 3) | WIRE_LENGTH_DELIMITED:
        revision = headerRevision(r.message());
        break;
      case (2 << 3) | WIRE_VARINT:
        watchId = r.varint();
        break;
      case (3 << 3) | WIRE_VARINT:
        created = r.bool();
        break;
      case (4 << 3) | WIRE_VARINT:
        canceled = r.bool();
        break;
      case (5 << 3) | WIRE_VARINT:
        compactRevision = r.varint();
        break;
      case (6 << 3) | WIRE_LENGTH_DELIMITED:
        cancelReason = r.string();
        break;
      case (11 << 3) | WIRE_LENGTH_DELIMITED:
        events.push(decodeEvent(r.message()));
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return { revision, watchId, created, canceled, compactRevision, cancelReason, events };
}

export function decodeRangeResponse(buf: Buffer): DecodedRangeResponse {
  const r = new ProtoReader(buf);
  let revision = 0;
  let more = false;
  let count = 0;
  const kvs: MirrorKv[] = [];
  while (!r.done) {
    const tag = r.tag();
    switch (tag) {
      case (1 << 3) | WIRE_LENGTH_DELIMITED:
        revision = headerRevision(r.message());
        break;
      case (2 << 3) | WIRE_LENGTH_DELIMITED:
        kvs.push(decodeKv(r.message()));
        break;
      case (3 << 3) | WIRE_VARINT:
        more = r.bool();
        break;
      case (4 << 3) | WIRE_VARINT:
        count = r.varint();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return { revision, kvs, more, count };
}
