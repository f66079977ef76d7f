/**
 * The cost of fencing, in the same run on the same etcd:
 *  - state transitions/s: EtcdStateStore.store fenced by the claim (one txn comparing the
 *    owner key's value and create revision) against the plain put it replaced;
 *  - checkpoints/s: ctx.checkpoint's fenced txn against a plain put of the same value;
 *  - claims/s: EtcdCoordinator.claim (claim txn, then the checkpoint lookup: wait for the watch
 *    to catch up, read the key only if it exists) against the bare claim txn alone, for tasks
 *    without a checkpoint and for tasks with one.
 * Sequential (one request at a time) and with 8 in flight.
 *
 *   bun bench/fencing.ts [transitions=2000] [claims=1000]
 */
import { Buffer } from "node:buffer";
import { parseEtcdConfig } from "../src/coordinators/etcd/config.ts";
import { connectEtcd } from "../src/coordinators/etcd/connect.ts";
import { EtcdCoordinator } from "../src/coordinators/etcd/coordinator.ts";
import { encodeOwner, Keys } from "../src/coordinators/etcd/keys.ts";
import { EtcdStateStore } from "../src/coordinators/etcd/state-store.ts";
import { silentLogger } from "../src/log.ts";
import type { CoordinatorContext } from "../src/types.ts";
import { client, startEtcd, submitAll, taskIds } from "./etcd-support.ts";

const TRANSITIONS = Number(process.argv[2] ?? 2000);
const CLAIMS = Number(process.argv[3] ?? 1000);
const NS = "/bench-fencing";
const keys = new Keys(NS);

/** Run `n` operations with `inFlight` at a time; ops/s. */
async function rate(n: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return (n / (performance.now() - t0)) * 1000;
}

/** Alternate the two measurements `rounds` times (machine noise hits both); best of each. */
async function compare(
  rounds: number,
  without: () => Promise<number>,
  withFence: () => Promise<number>,
): Promise<[number, number]> {
  let a = 0;
  let b = 0;
  for (let r = 0; r < rounds; r++) {
    a = Math.max(a, await without());
    b = Math.max(b, await withFence());
  }
  return [a, b];
}

function row(what: string, [without, withFence]: [number, number]): void {
  const change = ((withFence - without) / without) * 100;
  const f = (n: number): string => `${Math.round(n)}/s`.padStart(9);
  console.log(`${what.padEnd(42)} ${f(without)} ${f(withFence)}   ${change >= 0 ? "+" : ""}${change.toFixed(0)}%`);
}

const noop = (): void => {};
const ctx: CoordinatorContext = {
  node: "bench",
  log: silentLogger,
  announce: noop,
  withdraw: noop,
  command: noop,
  lost: noop,
  suspend: async () => {},
  resume: noop,
};

const etcd = await startEtcd();
try {
  // One connection for everything, so both sides of each comparison pay the same client costs.
  const config = parseEtcdConfig({ endpoints: [etcd.endpoint], namespace: NS, node: "bench", leaseTtl: 10 });
  const raw = connectEtcd(config);
  const store = new EtcdStateStore(raw, NS);
  const owner = encodeOwner("bench");
  // One claimed task per writer, so each fenced write compares a real owner key.
  const lease = await raw.lease(60);
  const tokens: number[] = [];
  for (let w = 0; w < 8; w++) {
    await raw
      .put(keys.owner(`s${w}`))
      .value(owner)
      .lease(await lease.grant())
      .exec();
    tokens.push(Number((await raw.get(keys.owner(`s${w}`)).exec()).kvs[0]!.create_revision));
  }
  const state = { code: "runnable" } as const;
  const value = JSON.stringify({ page: 12345, cursor: "abcdefghijklmnop" });

  console.log(`fencing cost on etcd ${etcd.endpoint}; best of 3 alternating rounds (without fencing, with, change)`);
  for (const inFlight of [1, 8]) {
    row(
      `state transitions, ${inFlight} in flight`,
      await compare(
        3,
        () => rate(TRANSITIONS, inFlight, (i) => store.store(`s${i % 8}`, state)),
        () =>
          rate(TRANSITIONS, inFlight, (i) => store.store(`s${i % 8}`, state, { node: "bench", token: tokens[i % 8]! })),
      ),
    );
  }

  const coordinator = new EtcdCoordinator(config, { etcd: raw, log: silentLogger });
  await coordinator.init(ctx);
  const cpTasks = taskIds(8, "cp");
  const c = client(etcd, NS);
  await submitAll(c, cpTasks);
  const cpTokens: number[] = [];
  for (const id of cpTasks) cpTokens.push((await coordinator.claim({ id, props: {} }))!.token);
  for (const inFlight of [1, 8]) {
    row(
      `checkpoints, ${inFlight} in flight`,
      await compare(
        3,
        () =>
          rate(TRANSITIONS, inFlight, (i) =>
            raw
              .put(keys.checkpoint(cpTasks[i % 8]!))
              .value(value)
              .exec(),
          ),
        () =>
          rate(TRANSITIONS, inFlight, (i) =>
            coordinator.checkpoint({ id: cpTasks[i % 8]!, props: {} }, cpTokens[i % 8]!, value),
          ),
      ),
    );
  }

  // Claims: the bare claim txn (on a lease of its own) against the coordinator's claim path.
  // Another node's name: owner keys with ours that it does not hold would look like orphans to it.
  const bareLease = await raw.leaseClient.leaseGrant({ TTL: 60 });
  const bareOwner = encodeOwner("bench-bare");
  const bare = (id: string) =>
    raw.kv.txn({
      compare: [
        { key: Buffer.from(keys.owner(id)), target: "Version", result: "Equal", version: 0 },
        { key: Buffer.from(keys.task(id)), target: "Version", result: "Greater", version: 0 },
      ],
      success: [
        { request_put: { key: Buffer.from(keys.owner(id)), value: Buffer.from(bareOwner), lease: bareLease.ID } },
      ],
    });
  for (const [label, withCheckpoint] of [
    ["claims, no checkpoint", false],
    ["claims, with a checkpoint", true],
  ] as const) {
    for (const inFlight of [1, 8]) {
      let round = 0;
      let won = 0;
      const fresh = async (side: string): Promise<string[]> => {
        const ids = taskIds(CLAIMS, `${side}${withCheckpoint ? "k" : "n"}${inFlight}-${round++}-`);
        await submitAll(c, ids);
        if (withCheckpoint) for (const id of ids) await raw.put(keys.checkpoint(id)).value(value).exec();
        return ids;
      };
      const result = await compare(
        2,
        async () => {
          const ids = await fresh("b");
          // With a checkpoint, the fair baseline reads it after the claim too.
          return rate(CLAIMS, inFlight, async (i) => {
            await bare(ids[i]!);
            if (withCheckpoint) await raw.get(keys.checkpoint(ids[i]!)).string();
          });
        },
        async () => {
          const ids = await fresh("c");
          return rate(CLAIMS, inFlight, async (i) => {
            const claim = await coordinator.claim({ id: ids[i]!, props: {} });
            if (claim && (claim.checkpoint !== undefined) === withCheckpoint) won++;
          });
        },
      );
      if (won !== 2 * CLAIMS) console.log(`  (only ${won} of ${2 * CLAIMS} claims won with the expected checkpoint)`);
      row(`${label}, ${inFlight} in flight`, result);
    }
  }
  await coordinator.close();
  await c.close();
  raw.close();
} finally {
  await etcd.stop();
}
