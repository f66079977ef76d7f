/**
 * The hand-written watch and listing decoders against etcd's own schema: random responses are
 * encoded by protobufjs from the .proto files etcd3 ships (the encoder etcd3 itself uses), and
 * what our decoders read must be exactly what they say, for any key, value, revision and
 * 64-bit lease id.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { decodeRangeResponse, decodeWatchResponse } from "../../src/coordinators/etcd/wire/kv-decode.ts";
import { expected, header, kv, kvMessage, long, revision, root, text } from "./wire-schema.ts";

const WatchResponse = root.lookupType("etcdserverpb.WatchResponse");
const RangeResponse = root.lookupType("etcdserverpb.RangeResponse");

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
