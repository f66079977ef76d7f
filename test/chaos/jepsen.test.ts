/**
 * The Jepsen-style chaos suite, two runs of 60 s each: one with a fixed seed (the same fault
 * schedule every time) and one with a random seed (printed in the test name and the report, so
 * a failure can be replayed with `npm run chaos -- --seed N --duration 60s`). Three compiled
 * nodes, a real etcd, 60 tasks, lease TTL 4 s; the harness and checker live in ./jepsen/.
 *
 * Handlers pace themselves with ctx.sleep and check ctx.owned. Where the runtime does not have
 * those yet, the handler falls back to the abort signal (the old pattern), and a node paused
 * past its lease then takes late steps: the checker reports them, which is the bug the
 * primitives fix. In that case, and only then, stale steps attributed to a node pause are the
 * expected outcome; everything else must hold regardless.
 */
import { describe, expect, test } from "bun:test";
import type { Violation } from "./jepsen/checker.ts";
import { DEFAULTS, runChaos } from "./jepsen/run.ts";
import { randomSeed } from "./jepsen/random.ts";

const FIXED_SEED = 1; // its first round of faults covers every kind within 60 s
const RANDOM_SEED = randomSeed();
const DURATION_MS = 60_000;
// Faults for 60 s, the last one finishing (a restart waits up to 3 TTL + start-up), the quiet
// period (up to 15 TTL + 30 s) and the shutdown: generous, in TTLs, never the typical time.
const TEST_TIMEOUT_MS = DURATION_MS + 60_000 + (15 * DEFAULTS.ttlSeconds * 1000 + 30_000) + 60_000;

/** A stale step taken by a node right after the harness had SIGSTOPped it past its lease. */
function isPauseStaleStep(v: Violation): boolean {
  return (
    v.kind === "stale-step" &&
    typeof v.evidence.fault === "string" &&
    v.evidence.fault.includes(` node-pause ${v.node} `)
  );
}

async function chaosRun(label: string, seed: number): Promise<void> {
  const outcome = await runChaos({ label, seed, durationMs: DURATION_MS, ...DEFAULTS });
  const r = outcome.result;
  expect(r.counts.steps).toBeGreaterThan(0);
  expect(outcome.faults.length).toBeGreaterThan(0);
  expect(r.tasksLost).toEqual([]);
  if (r.primitives.fallback === 0) {
    // The runtime has ctx.sleep/ctx.owned: no violation of any kind.
    expect(r.violations).toEqual([]);
    return;
  }
  // FALLBACK (no ctx.sleep/ctx.owned yet): only the known pause bug may show, and only as
  // late steps by the paused node itself; the fenced register, the end state and the node
  // processes must still be right.
  const unexpected = r.violations.filter((v) => !isPauseStaleStep(v));
  expect(unexpected).toEqual([]);
  const known = r.violations.length;
  console.log(
    `chaos ${label} (seed ${seed}): FALLBACK handler primitives; ${known} late step${known === 1 ? "" : "s"} after node pauses (the pause bug ctx.sleep/ctx.owned fix)`,
  );
}

describe("chaos suite: 3 compiled nodes, real etcd, seeded faults", () => {
  test(
    `[fixed seed ${FIXED_SEED}] 60 s of faults: at most one owner acts, the register never goes back, every task runs once at the end`,
    () => chaosRun("fixed-seed", FIXED_SEED),
    TEST_TIMEOUT_MS,
  );

  test(
    `[random seed ${RANDOM_SEED}] 60 s of faults: at most one owner acts, the register never goes back, every task runs once at the end`,
    () => chaosRun("random-seed", RANDOM_SEED),
    TEST_TIMEOUT_MS,
  );
});
