/**
 * The task view's ranked announcements (no etcd needed: the view is fed a listing directly).
 * Tasks this node ranks first are announced at once, later ranks after a delay, and later
 * ranks are held back while the consumer still has plenty of announced tasks to try.
 */
import { expect, test } from "bun:test";
import { encodeOwner, Keys } from "../../src/coordinators/etcd/keys.ts";
import { rendezvousRanksWithRoom } from "../../src/coordinators/etcd/rendezvous.ts";
import { TaskView } from "../../src/coordinators/etcd/task-view.ts";
import type { MirrorKv } from "../../src/coordinators/etcd/watch.ts";
import { silentLogger } from "../../src/log.ts";
import type { CoordinatorContext } from "../../src/types.ts";
import { staysFalse, waitFor } from "../support/wait.ts";

const keys = new Keys("/view");
const nodes = ["a", "b"];

function listing(ids: readonly string[]): MirrorKv[] {
  return ids.map((id, i) => ({ key: keys.task(id), value: "", createRevision: i + 1, modRevision: i + 1, lease: "0" }));
}

/** The owner key of `id`, held by `node`, created at `revision`. */
const ownerKv = (id: string, node: string, revision: number): MirrorKv => ({
  key: keys.owner(id),
  value: encodeOwner(node),
  createRevision: revision,
  modRevision: revision,
  lease: "7",
});
const ownerPut = (id: string, node: string, revision: number) => ({
  type: "put" as const,
  kv: ownerKv(id, node, revision),
});
/** Owner keys deleted in one response (a lease ended, or a batch release), from `revision` on. */
const ownerDeletes = (ids: readonly string[], revision: number) =>
  ids.map((id, i) => ({
    type: "delete" as const,
    kv: { key: keys.owner(id), value: "", createRevision: 0, modRevision: revision + i, lease: "0" },
  }));

function view(pending: () => number, self = "a", live: readonly string[] = nodes) {
  const announced = new Map<string, number>();
  const withdrawn: string[] = [];
  const orphans: [string, number][] = [];
  const context: CoordinatorContext = {
    node: self,
    log: silentLogger,
    announce: (task, rank) => announced.set(task.id, rank ?? 0),
    withdraw: (id) => withdrawn.push(id),
    pendingClaims: pending,
    command: () => {},
    lost: () => {},
    suspend: async () => {},
    resume: () => {},
  };
  const v = new TaskView({
    keys,
    node: self,
    log: silentLogger,
    context: () => context,
    orphan: (id, createRevision) => orphans.push([id, createRevision]),
    lost: () => {},
    liveNodes: () => live,
  });
  return { v, announced, orphans, withdrawn };
}

const ids = Array.from({ length: 200 }, (_, i) => `t${i}`);
// Nobody owns anything yet: each of the two nodes has room for half of them.
const room = new Map(nodes.map((n) => [n, ids.length / nodes.length]));
/** Plain rendezvous (no node has room). */
const rendezvousRanks = (tasks: readonly string[], self: string, among: readonly string[]): string[][] =>
  rendezvousRanksWithRoom(
    tasks,
    (id) => id,
    self,
    among,
    new Map(),
    () => {},
  );
const [first, second] = rendezvousRanksWithRoom(
  ids,
  (id) => id,
  "a",
  nodes,
  room,
  () => {},
) as [string[], string[]];

test("tasks ranked first are announced at once, the others after the rank delay", async () => {
  expect(first.length).toBeGreaterThan(0);
  expect(second.length).toBeGreaterThan(0);
  const { v, announced } = view(() => 0);
  v.snapshot(listing(ids), ids.length);
  expect([...announced.keys()].sort()).toEqual([...first].sort());
  await waitFor("the second rank to be announced", () => announced.size === ids.length);
  for (const id of second) expect(announced.get(id)).toBe(1);
  v.close();
});

test("later ranks wait while the consumer has more than enough to try, and come once it has not", async () => {
  let pending = 5000;
  const { v, announced } = view(() => pending);
  v.snapshot(listing(ids), ids.length);
  expect(announced.size).toBe(first.length);
  // Several rank delays pass: nothing of the second rank is announced while the queue is long.
  await staysFalse("a second-rank announcement", () => announced.size > first.length, 600);
  pending = 0;
  await waitFor("the second rank once the queue drained", () => announced.size === ids.length);
  v.close();
});

test("after a suspension every claimable task is announced again from the table, claimed ones not", async () => {
  const { v, announced } = view(() => 0);
  v.snapshot(listing(ids), ids.length);
  await waitFor("every rank announced", () => announced.size === ids.length);
  v.events([ownerPut("t0", "b", 1000), ownerPut("t1", "a", 1001)]);
  v.claims.set("t1", 1001);
  announced.clear();
  v.reannounce();
  await waitFor("every claimable task announced again", () => announced.size === ids.length - 2);
  expect(announced.has("t0")).toBe(false);
  expect(announced.has("t1")).toBe(false);
  v.close();
});

test("a claim without an answer whose owner key the watch showed during the claim is released as an orphan", () => {
  const { v, orphans } = view(() => 0);
  v.snapshot(listing(["x", "y"]), 2);
  // The owner events arrive while the claims are in flight: not orphans then.
  v.claiming.add("x");
  v.claiming.add("y");
  v.events([ownerPut("x", "a", 10), ownerPut("y", "b", 11)]);
  expect(orphans).toEqual([]);
  v.claiming.delete("x");
  v.claiming.delete("y");
  v.claimMayHaveLanded("x");
  v.claimMayHaveLanded("y"); // someone else's: not ours to release
  expect(orphans).toEqual([["x", 10]]);
  // Held by a later claim of ours: not an orphan either.
  v.claims.set("x", 10);
  v.claimMayHaveLanded("x");
  expect(orphans).toEqual([["x", 10]]);
  v.close();
});

test("a freed task is ranked without the node that gave it up: at once when that was another node, last when it was this one", async () => {
  const { v, announced } = view(() => 0);
  // Every task owned: half by b (among them all that b ranks first for), half by a.
  const ownerOf = (id: string): string => (second.includes(id) || first.indexOf(id) % 2 === 0 ? "b" : "a");
  const kvs = listing(ids);
  ids.forEach((id, i) => kvs.push(ownerKv(id, ownerOf(id), 500 + i)));
  v.snapshot(kvs, 1000);
  expect(announced.size).toBe(0);
  // Every owner key deleted in one response (b's lease ended, a released its own).
  v.events(ownerDeletes(ids, 1001));
  const fromB = ids.filter((id) => ownerOf(id) === "b");
  const fromA = ids.filter((id) => ownerOf(id) === "a");
  expect(fromA.length).toBeGreaterThan(0);
  // b's tasks: a is the only node left to rank, so all of them at once, b's first-ranked ones included.
  expect([...announced.keys()].sort()).toEqual([...fromB].sort());
  for (const id of fromB) expect(announced.get(id)).toBe(0);
  // a's own: after a rank delay, as the last rank, although a ranks some of them first.
  await waitFor("a's own released tasks to be announced", () => announced.size === ids.length);
  for (const id of fromA) expect(announced.get(id)).toBe(1);
  v.close();
});

test("another node's claim is withdrawn from the consumer only when the task was announced to it", () => {
  const { v, announced, withdrawn } = view(() => 0);
  v.snapshot(listing(ids), ids.length);
  // b claims everything: a's first rank was announced (withdraw each), its second rank was
  // still delayed (the consumer never heard of those: nothing to withdraw).
  v.events(ids.map((id, i) => ownerPut(id, "b", 500 + i)));
  expect(withdrawn.sort()).toEqual([...first].sort());
  expect(announced.size).toBe(first.length);
  v.close();
});

test("a claim that got no answer and did not land is announced again", () => {
  const { v, announced } = view(() => 0);
  const solo = rendezvousRanks(ids, "a", nodes)[0]![0]!; // a task this node ranks first: announced at once
  v.snapshot(listing([solo]), 1);
  expect(announced.has(solo)).toBe(true);
  // The consumer tried, the transaction got no answer (so it counted as a miss), and the
  // watch shows no owner: the task must be offered again, or nothing ever would.
  announced.clear();
  v.claimMayHaveLanded(solo);
  expect([...announced.keys()]).toEqual([solo]);
  // Claimed by another node meanwhile: nothing to offer.
  announced.clear();
  v.events([ownerPut(solo, "b", 5)]);
  v.claimMayHaveLanded(solo);
  expect(announced.size).toBe(0);
  v.close();
});

test("a dead node's tasks go first to the nodes below their share, as many as each is short", () => {
  // a owns 50, b owns 40, c (dead; its marker's delete not seen yet) 30: once c's lease ends,
  // the share is 60 for a and b, so a is first for 10 of c's tasks and b for 20.
  const all = Array.from({ length: 120 }, (_, i) => `f${i}`);
  const ownerOf = (i: number): string => (i < 50 ? "a" : i < 90 ? "b" : "c");
  const kvs = listing(all);
  all.forEach((id, i) => kvs.push(ownerKv(id, ownerOf(i), 500 + i)));
  const fromC = all.slice(90);
  const live = ["a", "b", "c"];
  const firsts = ["a", "b"].map((self) => {
    const { v, announced } = view(() => 0, self, live);
    v.snapshot(kvs, 1000);
    v.events(ownerDeletes(fromC, 1001));
    v.close();
    return [...announced].filter(([, rank]) => rank === 0).map(([id]) => id);
  }) as [string[], string[]];
  expect(firsts[0].length).toBe(10);
  expect(firsts[1].length).toBe(20);
  expect([...firsts[0], ...firsts[1]].sort()).toEqual([...fromC].sort());
  // Plain rendezvous would not have split them so: that is what the room changes.
  expect(rendezvousRanks(fromC, "a", ["a", "b"])[0]!.length).not.toBe(10);
});

test("a delayed announcement made before a relist looks the task up in the new table", async () => {
  const { v, announced } = view(() => 0);
  v.snapshot(listing(ids), ids.length);
  expect(announced.size).toBe(first.length);
  // A relist before the second rank is due: b owns half of a's second rank now.
  const takenByB = second.filter((_, i) => i % 2 === 0);
  const kvs = listing(ids);
  takenByB.forEach((id, i) => kvs.push(ownerKv(id, "b", 900 + i)));
  announced.clear();
  v.snapshot(kvs, 2000);
  await waitFor("the second rank to come due", () => second.some((id) => announced.get(id) === 1));
  await staysFalse("a task b owns announced", () => takenByB.some((id) => announced.has(id)), 400);
  for (const id of second.filter((id) => !takenByB.includes(id))) expect(announced.has(id)).toBe(true);
  v.close();
});

test("a task claimed in the same response that submitted it counts against nobody's room", () => {
  // Three tasks, each submitted and claimed by b within one response: none is given out. Then
  // three free tasks: a owns 0, b 3, so the share is 3 and only a has room, for all three.
  const { v, announced } = view(() => 0);
  v.snapshot([], 1);
  const early = ["e0", "e1", "e2"];
  v.events(
    early.flatMap((id, i) => [
      {
        type: "put" as const,
        kv: { key: keys.task(id), value: "", createRevision: 10 + i, modRevision: 10 + i, lease: "0" },
      },
      ownerPut(id, "b", 20 + i),
    ]),
  );
  expect(announced.size).toBe(0);
  const later = ["l0", "l1", "l2"];
  v.events(
    later.map((id, i) => ({
      type: "put" as const,
      kv: { key: keys.task(id), value: "", createRevision: 30 + i, modRevision: 30 + i, lease: "0" },
    })),
  );
  expect(
    [...announced]
      .filter(([, rank]) => rank === 0)
      .map(([id]) => id)
      .sort(),
  ).toEqual(later);
  v.close();
});
