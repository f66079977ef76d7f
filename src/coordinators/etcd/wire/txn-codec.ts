/**
 * The claim transaction on the wire: TxnRequest written and TxnResponse read by hand. Every
 * claim a node makes goes through one (64 claims each under load), and etcd3's generic path
 * builds protobufjs objects from plain ones, then Buffers and decimal strings from the answer:
 * a third of a claiming node's own CPU in a 10-node cluster's profile. Field numbers are
 * etcd's API (etcdserverpb, mvccpb), stable since v3.0; only what claims use is covered.
 */
import type { Buffer } from "node:buffer";
import { decodeKv, type MirrorKv } from "./kv-decode.ts";
import { ProtoReader, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from "./proto-reader.ts";
import { ProtoWriter } from "./proto-writer.ts";

/** One condition of a transaction. Revisions and versions are below 2^53. */
export type TxnCompare =
  | {
      readonly key: Uint8Array;
      readonly target: "version";
      readonly result: "equal" | "greater";
      readonly version: number;
    }
  | { readonly key: Uint8Array; readonly target: "create"; readonly result: "equal"; readonly createRevision: number }
  | { readonly key: Uint8Array; readonly target: "value"; readonly result: "equal"; readonly value: Uint8Array };

/** One operation of a branch. `lease` is a decimal lease id ("0" or absent: none). */
export type TxnOp =
  | { readonly put: { readonly key: Uint8Array; readonly value: Uint8Array; readonly lease?: string } }
  | { readonly range: { readonly key: Uint8Array; readonly countOnly?: boolean } };

export interface TxnSpec {
  readonly compare: readonly TxnCompare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

/** A response op: a range's keys and count; a put's is empty. */
export interface TxnOpResponse {
  readonly kvs: readonly MirrorKv[];
  readonly count: number;
}

export interface DecodedTxnResponse {
  readonly revision: number;
  readonly succeeded: boolean;
  readonly responses: readonly TxnOpResponse[];
}

// etcdserverpb.Compare enums
const RESULT = { equal: 0, greater: 1 } as const;
const TARGET = { version: 0, create: 1, value: 3 } as const;

function writeCompare(w: ProtoWriter, c: TxnCompare): void {
  w.varintField(1, RESULT[c.result]);
  w.varintField(2, TARGET[c.target]);
  w.bytesField(3, c.key);
  if (c.target === "version") w.varintField(4, c.version);
  else if (c.target === "create") w.varintField(5, c.createRevision);
  else w.bytesField(7, c.value);
}

function writeOp(w: ProtoWriter, op: TxnOp): void {
  if ("put" in op) {
    // RequestOp.request_put = 2: PutRequest { key = 1, value = 2, lease = 3 }
    w.messageField(2, (m) => {
      m.bytesField(1, op.put.key);
      m.bytesField(2, op.put.value);
      if (op.put.lease && op.put.lease !== "0") {
        m.tag(3, WIRE_VARINT);
        m.int64Decimal(op.put.lease);
      }
    });
  } else {
    // RequestOp.request_range = 1: RangeRequest { key = 1, count_only = 9 }
    w.messageField(1, (m) => {
      m.bytesField(1, op.range.key);
      m.boolField(9, op.range.countOnly === true);
    });
  }
}

/** TxnRequest { compare = 1, success = 2, failure = 3 }. */
export function encodeTxnRequest(spec: TxnSpec): Buffer {
  const w = new ProtoWriter(256 + spec.compare.length * 96);
  for (const c of spec.compare) w.messageField(1, (m) => writeCompare(m, c));
  for (const op of spec.success) w.messageField(2, (m) => writeOp(m, op));
  for (const op of spec.failure) w.messageField(3, (m) => writeOp(m, op));
  return w.finish();
}

const EMPTY: TxnOpResponse = { kvs: [], count: 0 };

/** ResponseOp { response_range = 1: RangeResponse { kvs = 2, count = 4 }, others empty here }. */
function readOpResponse(r: ProtoReader): TxnOpResponse {
  let result = EMPTY;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((1 << 3) | WIRE_LENGTH_DELIMITED)) {
      const range = r.message();
      const kvs: MirrorKv[] = [];
      let count = 0;
      while (!range.done) {
        const t = range.tag();
        if (t === ((2 << 3) | WIRE_LENGTH_DELIMITED)) kvs.push(decodeKv(range.message()));
        else if (t === ((4 << 3) | WIRE_VARINT)) count = range.varint();
        else range.skip(t & 7);
      }
      result = { kvs, count };
    } else r.skip(tag & 7);
  }
  return result;
}

/** TxnResponse { header = 1 (revision = 3), succeeded = 2, responses = 3 }. */
export function decodeTxnResponse(buf: Buffer): DecodedTxnResponse {
  const r = new ProtoReader(buf);
  let revision = 0;
  let succeeded = false;
  const responses: TxnOpResponse[] = [];
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((1 << 3) | WIRE_LENGTH_DELIMITED)) {
      const header = r.message();
      while (!header.done) {
        const t = header.tag();
        if (t === ((3 << 3) | WIRE_VARINT)) revision = header.varint();
        else header.skip(t & 7);
      }
    } else if (tag === ((2 << 3) | WIRE_VARINT)) succeeded = r.bool();
    else if (tag === ((3 << 3) | WIRE_LENGTH_DELIMITED)) responses.push(readOpResponse(r.message()));
    else r.skip(tag & 7);
  }
  return { revision, succeeded, responses };
}
