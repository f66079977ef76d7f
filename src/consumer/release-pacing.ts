/**
 * Release pacing: a handler that hands its task back (returns "release", or something that is
 * neither "done" nor "release") soon after the claim would otherwise be claimed again at once,
 * by the same node, forever: hundreds of thousands of claim/release cycles a second on a fast
 * coordinator. The pacer counts such quick releases per task and tells the consumer how long
 * to leave the task alone on this node: initial × 2^(k−1) for the k-th quick release in a row,
 * capped at max. A run that lasts at least `within` resets the count.
 *
 * Releases the node asked for (a stop for shutdown, balance, a command, a lost claim) are not
 * the handler's doing and never count.
 */
export interface ReleasePacingOptions {
  /** A release within this many ms of the claim counts as quick (0 disables pacing). */
  within: number;
  /** Back-off after the first quick release in a row, ms. */
  initial: number;
  /** Longest back-off, ms. */
  max: number;
}

export const DEFAULT_RELEASE_PACING: Readonly<ReleasePacingOptions> = { within: 1_000, initial: 1_000, max: 60_000 };

export interface PacingDecision {
  /** Ignore the task on this node for this many ms. */
  delay: number;
  /** Quick releases in a row, this one included. */
  repeats: number;
  /** True the first time this task is backed off since its count was last reset: log it then. */
  first: boolean;
}

export class ReleasePacer {
  /** Quick releases in a row, per task id. Entries go when a run is long enough, or on forget. */
  private readonly repeats = new Map<string, number>();

  constructor(readonly options: Readonly<ReleasePacingOptions>) {}

  /** Check options; returns a message naming what is wrong, or undefined. */
  static problem(o: unknown): string | undefined {
    const v = o as Partial<ReleasePacingOptions> | undefined;
    if (!v || typeof v !== "object") return "must be an object { within, initial, max } (ms)";
    for (const k of ["within", "initial", "max"] as const) {
      if (typeof v[k] !== "number" || !Number.isFinite(v[k]) || v[k]! < 0)
        return `${k} must be a finite number of ms >= 0, got ${String(v[k])}`;
    }
    if (v.max! < v.initial!) return `max (${v.max}) must be >= initial (${v.initial})`;
    return undefined;
  }

  /**
   * A run of `id` that lasted `ranFor` ms ended in a release the handler chose. Returns the
   * back-off to apply, or undefined when the run was long enough (its count is reset).
   */
  released(id: string, ranFor: number): PacingDecision | undefined {
    const { within, initial, max } = this.options;
    if (within <= 0 || ranFor >= within) {
      this.repeats.delete(id);
      return undefined;
    }
    const repeats = (this.repeats.get(id) ?? 0) + 1;
    this.repeats.set(id, repeats);
    // 2 ** large overflows to Infinity; Math.min keeps it at max.
    const delay = Math.min(initial * 2 ** Math.min(repeats - 1, 52), max);
    return { delay, repeats, first: repeats === 1 };
  }

  /** The task finished, or ran long enough elsewhere: forget its count. */
  forget(id: string): void {
    this.repeats.delete(id);
  }

  /** Tasks currently counted (for tests and introspection). */
  get size(): number {
    return this.repeats.size;
  }
}
