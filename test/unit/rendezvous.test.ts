/** Rendezvous claim order: nodes working through the same rank never want the same task. */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { rendezvousRanksWithRoom, rendezvousWeight } from "../../src/coordinators/etcd/rendezvous.ts";

/** Plain rendezvous: no node has room. */
const rendezvousRanks = (ids: readonly string[], self: string, nodes: readonly string[]): string[][] =>
  rendezvousRanksWithRoom(
    ids,
    (id) => id,
    self,
    nodes,
    new Map(),
    () => {},
  );
const rendezvousOrder = (ids: readonly string[], self: string, nodes: readonly string[]): string[] =>
  rendezvousRanks(ids, self, nodes).flat();

const nodes = ["node-1", "node-2", "node-3", "node-4"];
const ids = Array.from({ length: 4000 }, (_, i) => `task-${i}`);

test("each task ranks first for exactly one node, and the firsts spread evenly", () => {
  const firsts = nodes.map((self) => {
    const order = rendezvousOrder(ids, self, nodes);
    expect([...order].sort()).toEqual([...ids].sort()); // a permutation: nothing lost or doubled
    // The head of the order: tasks whose heaviest node is self.
    return order.filter((id) => nodes.every((n) => n === self || rendezvousWeight(n, id) < rendezvousWeight(self, id)));
  });
  const all = firsts.flat();
  expect(new Set(all).size).toBe(ids.length);
  for (const f of firsts) expect(Math.abs(f.length - ids.length / nodes.length)).toBeLessThan(ids.length * 0.05);
  // Those tasks come first in each node's order.
  for (const [i, self] of nodes.entries()) {
    expect(rendezvousOrder(ids, self, nodes).slice(0, firsts[i]!.length).sort()).toEqual([...firsts[i]!].sort());
  }
});

test("the order is the same on every call and does not depend on the input order", () => {
  const a = rendezvousOrder(ids, "node-2", nodes);
  const b = rendezvousOrder([...ids].reverse(), "node-2", [...nodes].reverse());
  expect(b).toEqual(a);
  expect(rendezvousOrder(["x"], "node-2", nodes)).toEqual(["x"]);
  expect(rendezvousOrder([], "node-2", [])).toEqual([]);
});

describe("with room", () => {
  const ids = Array.from({ length: 300 }, (_, i) => `task-${i}`);
  const nodes = ["node-1", "node-2", "node-3"];
  /** Each node's first-ranked tasks, each node computing on its own from the same inputs. */
  const firsts = (room: ReadonlyMap<string, number>, input: readonly string[] = ids) =>
    nodes.map(
      (self) =>
        rendezvousRanksWithRoom(
          input,
          (id) => id,
          self,
          nodes,
          room,
          () => {},
        )[0]!,
    );

  test("every task has exactly one first node, and each node is first for as many as it has room for", () => {
    const room = new Map([
      ["node-1", 10],
      ["node-2", 90],
      ["node-3", 200],
    ]);
    const [a, b, c] = firsts(room) as [string[], string[], string[]];
    expect([a.length, b.length, c.length]).toEqual([10, 90, 200]);
    expect([...a, ...b, ...c].sort()).toEqual([...ids].sort());
    // Without room each would have been first for about a third.
    const plain = nodes.map((self) => rendezvousRanks(ids, self, nodes)[0]!.length);
    expect(plain.every((n) => n > 60 && n < 140)).toBe(true);
  });

  test("the tasks given out match what each node computes, whatever the input order", () => {
    const room = new Map(nodes.map((n) => [n, 100]));
    const given = new Map<string, string>();
    const mine = rendezvousRanksWithRoom(
      ids,
      (id) => id,
      "node-2",
      nodes,
      room,
      (id, node) => given.set(id, node),
    )[0]!;
    expect(mine.sort()).toEqual(ids.filter((id) => given.get(id) === "node-2").sort());
    expect(given.size).toBe(ids.length);
    const reversed = firsts(room, [...ids].reverse());
    expect(reversed.map((f) => [...f].sort())).toEqual(firsts(room).map((f) => [...f].sort()));
  });

  test("a node far below its share is first for all of it; with no room anywhere, each task's heaviest node", () => {
    const joiner = new Map([["node-3", 1000]]);
    expect(firsts(joiner)[2]!.length).toBe(ids.length);
    const heaviest = (id: string) =>
      nodes.reduce((best, n) => (rendezvousWeight(n, id) > rendezvousWeight(best, id) ? n : best));
    firsts(new Map()).forEach((first, i) =>
      expect(first.sort()).toEqual(ids.filter((id) => heaviest(id) === nodes[i]).sort()),
    );
  });

  test("a node that is not a candidate (it gave the tasks up) is first for none and ranks behind the others", () => {
    const room = new Map(nodes.map((n) => [n, 100]));
    const ranks = rendezvousRanksWithRoom(
      ids,
      (id) => id,
      "node-9",
      nodes,
      room,
      () => {},
    );
    expect(ranks[0]).toEqual([]);
    expect(ranks.flat().sort()).toEqual([...ids].sort());
  });
});

test("property: with room, every node computes the same partition, and room bounds it", () => {
  const input = fc
    .record({
      nodes: fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,8}$/), { minLength: 1, maxLength: 6 }),
      ids: fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 150 }),
      rooms: fc.array(fc.nat(80), { minLength: 6, maxLength: 6 }),
    })
    .map(({ nodes, ids, rooms }) => ({ nodes, ids, room: new Map(nodes.map((n, i) => [n, rooms[i]!])) }));
  fc.assert(
    fc.property(input, ({ nodes, ids, room }) => {
      const given = new Map<string, string>();
      const firsts = nodes.map((self, i) => {
        // Each node on its own, from the same inputs in another order.
        const order = i % 2 === 0 ? ids : [...ids].reverse();
        const seen = new Map<string, string>();
        const ranks = rendezvousRanksWithRoom(
          order,
          (id) => id,
          self,
          nodes,
          room,
          (id, n) => seen.set(id, n),
        );
        expect(ranks.flat().sort()).toEqual([...ids].sort()); // every task exactly once
        if (i === 0) for (const [id, n] of seen) given.set(id, n);
        else expect(seen).toEqual(given); // the same assignment on every node
        return ranks[0]!;
      });
      expect(firsts.flat().sort()).toEqual([...ids].sort()); // exactly one first node per task
      const total = [...room.values()].reduce((a, b) => a + b, 0);
      firsts.forEach((first, i) => {
        const r = room.get(nodes[i]!)!;
        expect(first).toEqual(ids.filter((id) => given.get(id) === nodes[i]).sort((a, b) => order(a, b, nodes[i]!)));
        if (total >= ids.length) expect(first.length).toBeLessThanOrEqual(r);
        if (total <= ids.length) expect(first.length).toBeGreaterThanOrEqual(r);
      });
    }),
    { numRuns: 200 },
  );
});

/** Within a rank, a node's tasks come by its weight for them, highest first. */
function order(a: string, b: string, self: string): number {
  return rendezvousWeight(self, b) - rendezvousWeight(self, a);
}
