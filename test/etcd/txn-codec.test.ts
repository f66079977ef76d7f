/**
 * The hand-written claim transaction codec against etcd's own schema (the .proto files etcd3
 * ships, through protobufjs, the encoder etcd3 itself uses): what we write must decode to
 * exactly the request we meant, for any keys, values, revisions and 64-bit lease ids, and
 * what etcd's schema encodes as a response must read back exactly. The real claim path is
 * exercised against etcd by the coordinator and fencing tests.
 */
import { Buffer } from "node:buffer";
import { expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeTxnResponse,
  encodeTxnRequest,
  type TxnCompare,
  type TxnOp,
} from "../../src/coordinators/etcd/wire/txn-codec.ts";
import { expected, header, kv, kvMessage, leaseId, revision, root } from "./wire-schema.ts";

const TxnRequest = root.lookupType("etcdserverpb.TxnRequest");
const TxnResponse = root.lookupType("etcdserverpb.TxnResponse");

const bytes = fc.uint8Array({ maxLength: 200 });

const compare: fc.Arbitrary<TxnCompare> = fc.oneof(
  fc.record({
    key: bytes,
    target: fc.constant("version" as const),
    result: fc.constantFrom("equal" as const, "greater" as const),
    version: revision,
  }),
  fc.record({
    key: bytes,
    target: fc.constant("create" as const),
    result: fc.constant("equal" as const),
    createRevision: revision,
  }),
  fc.record({ key: bytes, target: fc.constant("value" as const), result: fc.constant("equal" as const), value: bytes }),
);
const op: fc.Arbitrary<TxnOp> = fc.oneof(
  fc.record({
    put: fc.record({ key: bytes, value: bytes, lease: fc.option(leaseId.map(String), { nil: undefined }) }),
  }),
  fc.record({ range: fc.record({ key: bytes, countOnly: fc.option(fc.boolean(), { nil: undefined }) }) }),
);

const RESULTS = { equal: 0, greater: 1 } as const;
const TARGETS = { version: 0, create: 1, value: 3 } as const;
const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array()).toString("hex");
const long = (v: unknown): string => (v === undefined || v === null ? "0" : String(v));

/** What protobufjs says a request op holds, in a form both sides can be compared in. */
function seenOp(o: Record<string, Record<string, unknown> | undefined>) {
  if (o.request_put)
    return {
      put: {
        key: hex(o.request_put.key as Uint8Array),
        value: hex(o.request_put.value as Uint8Array),
        lease: long(o.request_put.lease),
      },
    };
  const r = o.request_range!;
  return { range: { key: hex(r.key as Uint8Array), countOnly: r.count_only === true } };
}
function meantOp(o: TxnOp) {
  if ("put" in o)
    return {
      put: {
        key: hex(o.put.key),
        value: hex(o.put.value),
        lease: o.put.lease === undefined ? "0" : BigInt.asIntN(64, BigInt(o.put.lease)).toString(),
      },
    };
  return { range: { key: hex(o.range.key), countOnly: o.range.countOnly === true } };
}

test("a transaction we encode is exactly the request etcd's schema decodes", () => {
  fc.assert(
    fc.property(
      fc.array(compare, { maxLength: 12 }),
      fc.array(op, { maxLength: 12 }),
      fc.array(op, { maxLength: 12 }),
      (cmp, success, failure) => {
        const decoded = TxnRequest.toObject(TxnRequest.decode(encodeTxnRequest({ compare: cmp, success, failure })), {
          longs: String,
          defaults: true,
        }) as {
          compare: Record<string, unknown>[];
          success: Record<string, Record<string, unknown> | undefined>[];
          failure: Record<string, Record<string, unknown> | undefined>[];
        };
        expect(
          decoded.compare.map((c) => ({
            key: hex(c.key as Uint8Array),
            result: c.result,
            target: c.target,
            version: long(c.version),
            create: long(c.create_revision),
            value: hex(c.value as Uint8Array),
          })),
        ).toEqual(
          cmp.map((c) => ({
            key: hex(c.key),
            result: RESULTS[c.result],
            target: TARGETS[c.target],
            version: c.target === "version" ? String(c.version) : "0",
            create: c.target === "create" ? String(c.createRevision) : "0",
            value: c.target === "value" ? hex(c.value) : "",
          })),
        );
        expect(decoded.success.map(seenOp)).toEqual(success.map(meantOp));
        expect(decoded.failure.map(seenOp)).toEqual(failure.map(meantOp));
      },
    ),
    { numRuns: 300 },
  );
});

test("a transaction response etcd's schema encodes reads back exactly", () => {
  fc.assert(
    fc.property(
      revision,
      fc.boolean(),
      fc.array(
        fc.oneof(
          fc.record({ range: fc.record({ kvs: fc.array(kv, { maxLength: 3 }), count: revision }) }),
          fc.constant({ put: true }),
        ),
        { maxLength: 10 },
      ),
      (rev, succeeded, responses) => {
        const message = TxnResponse.fromObject({
          header: header(rev),
          succeeded,
          responses: responses.map((r) =>
            "range" in r
              ? {
                  response_range: {
                    header: { revision: String(rev) },
                    kvs: r.range.kvs.map(kvMessage),
                    more: false,
                    count: String(r.range.count),
                  },
                }
              : { response_put: { header: { revision: String(rev) } } },
          ),
        });
        const decoded = decodeTxnResponse(Buffer.from(TxnResponse.encode(message).finish()));
        expect(decoded).toEqual({
          revision: rev,
          succeeded,
          responses: responses.map((r) =>
            "range" in r
              ? {
                  kvs: r.range.kvs.map(expected),
                  count: r.range.count,
                }
              : { kvs: [], count: 0 },
          ),
        });
      },
    ),
    { numRuns: 300 },
  );
});
