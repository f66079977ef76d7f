/**
 * A layer is what one source (defaults, file, env, flags) says: raw values keyed by file key
 * ("etcd.dial_timeout"), each with where it came from. Layers are merged by precedence and
 * validated once, so an error can always name the source of the value that won.
 */
import type { Source } from "./schema.ts";

export interface RawValue {
  readonly value: unknown;
  readonly source: Source;
}

export type Layer = Map<string, RawValue>;

/** Later layers win, key by key. */
export function mergeLayers(...layers: Layer[]): Layer {
  const out: Layer = new Map();
  for (const layer of layers) for (const [key, raw] of layer) out.set(key, raw);
  return out;
}

/** The closest of `candidates` to `word` if it looks like a typo of it (edit distance <= 2). */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return prev[b.length]!;
}
