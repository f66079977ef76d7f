/**
 * The hand-written watch and listing decoders against etcd's own schema: random responses are
 * encoded by protobufjs from the .proto files etcd3 ships (the encoder etcd3 itself uses), and
 * what our decoders read must be exactly what they say, for any key, value, revision and
 * 64-bit lease id.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { expect, test } from "bun:test";
import fc from "fast-check";
import protobuf from "protobufjs";
import { decodeRangeResponse, decodeWatchResponse } from "../../src/coordinators/etcd/wire/kv-decode.ts";

const etcd3Dir = dirname(createRequire(import.meta.url).resolve("etcd3/package.json"));
// keepCase: field names as in the .proto (etcd3 loads it the same way).
const root = new protobuf.Root().loadSync(join(etcd3Dir, "proto", "rpc.proto"), { keepCase: true });
const WatchResponse = root.lookupType("etcdserverpb.WatchResponse");
const RangeResponse = root.lookupType("etcdserverpb.RangeResponse");

const text = fc.string({ unit: "grapheme", maxLength: 40 });
const revision = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const leaseId = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
// Owner keys, their few values and lease ids repeat in real streams (the decoder caches them):
// mix repeats with arbitrary values so cache hits and misses are both checked.
const kv = fc.record({
  key: fc.oneof(
    text,
    text.map((t) => `${t}/owner`),
  ),
  value: fc.oneof(text, fc.constantFrom('{"node":"a"}', '{"node":"b"}', "")),
  createRevision: revision,
  modRevision: revision,
  version: revision,
  lease: fc.oneof(leaseId, fc.constantFrom(7587862371024181250n, 5n, 0n)),
});
type Kv = typeof kv extends fc.Arbitrary<infer T> ? T : never;

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
// Decimal strings: fromObject parses them into 64-bit values exactly.
const long = (n: number | bigint): string => String(n);
const kvMessage = (k: Kv) => ({
  key: bytes(k.key),
  value: bytes(k.value),
  create_revision: long(k.createRevision),
  mod_revision: long(k.modRevision),
  version: long(k.version),
  lease: long(k.lease),
});
const expected = (k: Kv) => ({
  key: k.key,
  value: k.value,
  createRevision: k.createRevision,
  modRevision: k.modRevision,
  lease: k.lease.toString(),
});
const header = (rev: number) => ({
  cluster_id: long(123456789),
  member_id: long(2n ** 64n - 5n),
  revision: long(rev),
  raft_term: long(7),
});

test("watch responses decode to exactly what etcd's schema encodes", () => {
  fc.assert(
    fc.property(
      revision,
      fc.array(fc.record({ type: fc.constantFrom(0, 1), kv, prev: fc.option(kv, { nil: undefined }) }), {
        maxLength: 8,
      }),
      fc.boolean(),
      fc.boolean(),
      revision,
      text,
      (rev, events, created, canceled, compact, reason) => {
        const message = WatchResponse.fromObject({
          header: header(rev),
          watch_id: long(3),
          created,
          canceled,
          compact_revision: long(compact),
          cancel_reason: reason,
          events: events.map((e) => ({
            type: e.type,
            kv: kvMessage(e.kv),
            ...(e.prev ? { prev_kv: kvMessage(e.prev) } : {}),
          })),
        });
        const decoded = decodeWatchResponse(Buffer.from(WatchResponse.encode(message).finish()));
        expect(decoded).toEqual({
          revision: rev,
          watchId: 3,
          created,
          canceled,
          compactRevision: compact,
          cancelReason: reason,
          events: events.map((e) => ({ type: e.type === 1 ? "delete" : "put", kv: expected(e.kv) })),
        });
      },
    ),
    { numRuns: 300 },
  );
});

test("range responses decode to exactly what etcd's schema encodes", () => {
  fc.assert(
    fc.property(revision, fc.array(kv, { maxLength: 12 }), fc.boolean(), revision, (rev, kvs, more, count) => {
      const message = RangeResponse.fromObject({
        header: header(rev),
        kvs: kvs.map(kvMessage),
        more,
        count: long(count),
      });
      const decoded = decodeRangeResponse(Buffer.from(RangeResponse.encode(message).finish()));
      expect(decoded).toEqual({ revision: rev, kvs: kvs.map(expected), more, count });
    }),
    { numRuns: 300 },
  );
});

test("a truncated or malformed response is an error, never a silent partial read", () => {
  const message = WatchResponse.fromObject({
    header: header(9),
    events: [
      { type: 0, kv: kvMessage({ key: "k", value: "v", createRevision: 1, modRevision: 2, version: 1, lease: 5n }) },
    ],
  });
  const full = Buffer.from(WatchResponse.encode(message).finish());
  for (let cut = 1; cut < full.length; cut++) {
    let result: unknown;
    try {
      result = decodeWatchResponse(full.subarray(0, cut));
    } catch (err) {
      expect(err).toBeInstanceOf(RangeError);
      continue;
    }
    // A cut exactly between two top-level fields is a valid shorter message; then it must not
    // contain a half event.
    const events = (result as { events: unknown[] }).events;
    expect(events.length).toBe(0);
  }
  expect(() => decodeWatchResponse(Buffer.from([0x0b]))).toThrow(RangeError); // wire type 3 (groups)
});
