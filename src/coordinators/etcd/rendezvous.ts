/**
 * Rendezvous (highest-random-weight) claim order. Every node sees the same backlog at the same
 * moment (a listing, a bulk submit, a dead node's tasks coming free); if each tried them in the
 * same order, or even in independent random orders, their claims would collide and every lost
 * race costs a transaction. Instead each task ranks the live nodes by a hash of (node, task):
 * a node tries first the tasks it ranks first for, then those it ranks second for, and so on.
 * At each rank every task has exactly one node, so nodes working through the same rank never
 * want the same task, with no coordination beyond the shared list of live nodes.
 */

/** 32-bit FNV-1a of a string's UTF-16 code units, continued from `seed`. */
function fnv1a(text: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** Murmur3's finaliser: FNV alone mixes the last characters poorly, and ids often differ only there. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const FNV_OFFSET = 0x811c9dc5;

/** The part of a weight that depends on the node alone. */
function nodeSeed(node: string): number {
  return fnv1a("\u0000", fnv1a(node, FNV_OFFSET));
}

/** Weight of `task` for `node` (same value on every node and runtime). */
export function rendezvousWeight(node: string, task: string): number {
  return mix(fnv1a(task, nodeSeed(node)));
}

/**
 * Rendezvous order with room: each task goes first to the first node in its rendezvous order
 * that still has room (`room`: tasks each node may still take before it reaches its share,
 * counted down as tasks are given out), and only when no node has any to the node it ranks
 * first. The other nodes keep their rendezvous order behind it.
 *
 * Plain rendezvous gives each node about 1/n of a freed batch, give or take its square root,
 * whatever the nodes already run: after a failover every survivor gets ~1/n of the dead
 * node's tasks although one of them may be hundreds short of its share and another at it, and
 * the difference is then settled by deferrals (each a round of delays). With room, a node far
 * below its share (a joiner, say) is first for nearly all of it.
 *
 * Every node must give out the same tasks in the same order to agree on the result: the ids
 * are taken in sorted order (UTF-16 code units, the same on every runtime), and the room comes
 * from the same watched counts. When two nodes disagree (their watch responses split a batch
 * differently), a task has two first nodes (one claim loses) or none (the second takes it
 * after the rank delay).
 *
 * With no room anywhere this is plain rendezvous: a task's first node is the one it weighs
 * most for. Within a rank, self's tasks come by its weight for them, highest first.
 *
 * Takes tasks as anything with an id (`idOf`); returns self's groups by rank (element r holds
 * the tasks for which self ranks r-th; some may be empty), and calls `given(task, node)` for
 * every task with the node it went to first. O(tasks × nodes).
 */
export function rendezvousRanksWithRoom<T>(
  tasks: readonly T[],
  idOf: (task: T) => string,
  self: string,
  nodes: readonly string[],
  room: ReadonlyMap<string, number>,
  given: (task: T, node: string) => void,
): T[][] {
  if (tasks.length === 0 || nodes.length === 0) return [[...tasks]];
  // `nodes` are those tasks may go to; self among them or not (then it ranks behind them all).
  const seeds = nodes.map(nodeSeed);
  const left = nodes.map((n) => room.get(n) ?? 0);
  const selfAt = nodes.indexOf(self);
  const selfSeed = nodeSeed(self);
  const weights = new Array<number>(nodes.length).fill(0);
  const buckets: { task: T; weight: number }[][] = Array.from({ length: nodes.length + 1 }, () => []);
  const sorted = tasks.map((task) => ({ task, id: idOf(task) }));
  sorted.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const { task, id } of sorted) {
    let top = 0;
    let first = -1;
    for (let j = 0; j < nodes.length; j++) {
      const w = mix(fnv1a(id, seeds[j]!));
      weights[j] = w;
      if (w > weights[top]!) top = j;
      // The heaviest node with room, else (below) the heaviest.
      if (left[j]! > 0 && (first < 0 || w > weights[first]!)) first = j;
    }
    if (first < 0) first = top;
    else left[first] = left[first]! - 1;
    given(task, nodes[first]!);
    const selfWeight = selfAt >= 0 ? weights[selfAt]! : mix(fnv1a(id, selfSeed));
    let rank = 0;
    if (first !== selfAt) {
      rank = 1;
      for (let j = 0; j < nodes.length; j++) if (j !== first && j !== selfAt && weights[j]! > selfWeight) rank++;
    }
    buckets[rank]!.push({ task, weight: selfWeight });
  }
  return buckets.map((bucket) => bucket.sort((a, b) => b.weight - a.weight).map((entry) => entry.task));
}
