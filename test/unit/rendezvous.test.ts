/** Rendezvous claim order: nodes working through the same rank never want the same task. */
import { expect, test } from "bun:test";
import { rendezvousOrder, rendezvousWeight } from "../../src/coordinators/etcd/rendezvous.ts";

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
