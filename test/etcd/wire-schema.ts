/**
 * etcd's own schema and random key-values for the tests of the hand-written wire codecs
 * (wire-decode.test.ts, txn-codec.test.ts): the .proto files etcd3 ships, loaded by protobufjs
 * the way etcd3 loads them, so what these tests encode is what etcd3 itself would.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import fc from "fast-check";
import protobuf from "protobufjs";

const etcd3Dir = dirname(createRequire(import.meta.url).resolve("etcd3/package.json"));
// keepCase: field names as in the .proto (etcd3 loads it the same way).
export const root = new protobuf.Root().loadSync(join(etcd3Dir, "proto", "rpc.proto"), { keepCase: true });

export const text = fc.string({ unit: "grapheme", maxLength: 40 });
export const revision = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
export const leaseId = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
// Owner keys, their few values and lease ids repeat in real streams (the decoder caches them):
// mix repeats with arbitrary values so cache hits and misses are both checked.
export const kv = fc.record({
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
export type Kv = typeof kv extends fc.Arbitrary<infer T> ? T : never;

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
// Decimal strings: fromObject parses them into 64-bit values exactly.
export const long = (n: number | bigint): string => String(n);
export const kvMessage = (k: Kv) => ({
  key: bytes(k.key),
  value: bytes(k.value),
  create_revision: long(k.createRevision),
  mod_revision: long(k.modRevision),
  version: long(k.version),
  lease: long(k.lease),
});
export const expected = (k: Kv) => ({
  key: k.key,
  value: k.value,
  createRevision: k.createRevision,
  modRevision: k.modRevision,
  lease: k.lease.toString(),
});
export const header = (rev: number) => ({
  cluster_id: long(123456789),
  member_id: long(2n ** 64n - 5n),
  revision: long(rev),
  raft_term: long(7),
});
