/** The task table's incremental counts and the key parsers (no etcd needed). */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { encodeOwner, invalidNodeNameReason, invalidTaskIdReason, Keys } from "../../src/coordinators/etcd/keys.ts";
import { parseProps, TaskTable } from "../../src/coordinators/etcd/task-table.ts";

test("owner and unclaimed counts stay equal to a full recount under any sequence of changes", () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant("exists" as const), id: fc.integer({ min: 0, max: 5 }), value: fc.boolean() }),
    fc.record({
      kind: fc.constant("owner" as const),
      id: fc.integer({ min: 0, max: 5 }),
      node: fc.option(fc.constantFrom("a", "b", "c", "garbage"), { nil: undefined }),
    }),
    fc.record({
      kind: fc.constant("props" as const),
      id: fc.integer({ min: 0, max: 5 }),
      value: fc.option(fc.constant("{}"), { nil: undefined }),
    }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const table = new TaskTable();
      let rev = 0;
      for (const o of ops) {
        const id = `t${o.id}`;
        rev++;
        if (o.kind === "exists") table.setExists(id, o.value);
        else if (o.kind === "props") table.setProps(id, o.value, rev);
        else if (o.node === undefined) table.setOwner(id, undefined);
        else {
          const raw = o.node === "garbage" ? "}{" : encodeOwner(o.node);
          table.setOwner(id, { node: o.node === "garbage" ? undefined : o.node, raw, createRevision: rev, lease: "1" });
        }
      }
      const owners = new Map<string, number>();
      let unclaimed = 0;
      for (const r of table.all()) {
        if (r.exists && !r.owner) unclaimed++;
        if (r.owner?.node) owners.set(r.owner.node, (owners.get(r.owner.node) ?? 0) + 1);
        expect(r.exists || r.propsRaw !== undefined || r.owner !== undefined).toBe(true); // empty records are dropped
      }
      expect(table.unclaimedCount()).toBe(unclaimed);
      for (const n of ["a", "b", "c"]) expect(table.ownerCount(n)).toBe(owners.get(n) ?? 0);
    }),
    { numRuns: 300 },
  );
});

test("props: absent or empty is {}, null is {}, non-objects and bad JSON are refused", () => {
  expect(parseProps(undefined)).toEqual({ ok: true, props: {} });
  expect(parseProps("")).toEqual({ ok: true, props: {} });
  expect(parseProps("null")).toEqual({ ok: true, props: {} });
  expect(parseProps('{"UserID":"test2"}')).toEqual({ ok: true, props: { UserID: "test2" } });
  expect(parseProps("[1]").ok).toBe(false);
  expect(parseProps("5").ok).toBe(false);
  expect(parseProps("{nope").ok).toBe(false);
});

test("key parsing: task parts, node markers and commands; ids and names that would break the layout", () => {
  const k = new Keys("/ns");
  expect(k.parseTaskKey("/ns/tasks/t1")).toEqual({ id: "t1", part: "task" });
  expect(k.parseTaskKey("/ns/tasks/t1/owner")).toEqual({ id: "t1", part: "owner" });
  expect(k.parseTaskKey("/ns/tasks/t1/commands")).toEqual({ id: "t1", part: "commands" });
  expect(k.parseTaskKey("/ns/tasks/_metafora")).toBeUndefined();
  expect(k.parseTaskKey("/ns/tasks/t1/x/y")).toBeUndefined();
  expect(k.parseTaskKey("/ns2/tasks/t1")).toBeUndefined();
  expect(k.parseNodeKey("/ns/nodes/m/_metafora")).toEqual({ node: "m", part: "marker" });
  expect(k.parseNodeKey("/ns/nodes/m/commands/123")).toEqual({ node: "m", part: "command" });
  expect(k.parseNodeKey("/ns/nodes/m/commands/_metafora")).toBeUndefined();
  expect(k.parseNodeKey("/ns/nodes/m")).toBeUndefined();
  expect(invalidTaskIdReason("a/b")).toContain("'/'");
  expect(invalidTaskIdReason("")).toContain("empty");
  expect(invalidTaskIdReason("ok:1")).toBeUndefined();
  expect(invalidNodeNameReason("_metafora")).toContain("reserved");
  expect(invalidNodeNameReason("node-1")).toBeUndefined();
});
