/**
 * State machine costs.
 *
 *   bun bench/statemachine.ts [transitions=20000] [rounds=200] [paused=2000]
 *
 * 1. Transition throughput on the memory store: a handler that returns `checkpoint` N times
 *    (each one a stored transition and a new handler execution), against the baseline of N
 *    bare store writes (encode + decode, the floor).
 * 2. Command latency, send → new state stored, for pause/run round trips: memory commands,
 *    and etcd (a real local etcd) with the etcd state store. Baseline for etcd: one put + get.
 * 3. Memory per resident paused task (handler not running, waiting for a command).
 */
import { Keys, encodeOwner } from "../src/coordinators/etcd/keys.ts";
import { EtcdStateStore } from "../src/coordinators/etcd/state-store.ts";
import { EtcdTaskCommands } from "../src/coordinators/etcd/task-commands.ts";
import { MemoryTaskCommands } from "../src/coordinators/memory/commander.ts";
import { MemoryStateStore } from "../src/coordinators/memory/state-store.ts";
import { silentLogger } from "../src/log.ts";
import { statefulHandler } from "../src/statemachine/stateful.ts";
import type { State, StateStore, TaskCommander, TaskCommandSource } from "../src/statemachine/types.ts";
import type { HandlerContext, HandlerResult } from "../src/types.ts";
import { median, startEtcd } from "./etcd-support.ts";

const TRANSITIONS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 200);
const PAUSED = Number(process.argv[4] ?? 2_000);

function context(): { ctx: HandlerContext; stop(): void } {
  const ac = new AbortController();
  const ctx: HandlerContext = {
    signal: ac.signal,
    token: 1,
    node: "bench",
    log: silentLogger,
    claimDeadline: () => Infinity,
    client: undefined as never,
    onStop: () => () => {},
    owned: () => !ac.signal.aborted,
    sleep: () => Promise.resolve(!ac.signal.aborted),
    checkpoint: () => Promise.resolve(),
    lastCheckpoint: undefined,
  };
  return { ctx, stop: () => ac.abort() };
}

async function throughput(): Promise<void> {
  const floorStore = new MemoryStateStore();
  let t0 = performance.now();
  for (let i = 0; i < TRANSITIONS; i++) await floorStore.store("t", { code: "runnable" });
  const floor = performance.now() - t0;

  const store = new MemoryStateStore();
  let left = TRANSITIONS;
  const handler = statefulHandler({
    store,
    commands: new MemoryTaskCommands(),
    run: () => (--left > 0 ? "checkpoint" : "complete"),
  });
  const { ctx } = context();
  t0 = performance.now();
  const result = await handler.run({ id: "t", props: {} }, ctx);
  const ms = performance.now() - t0;
  if (result !== "done") throw new Error(`expected done, got ${result}`);
  console.log(
    `transitions (memory store): ${TRANSITIONS} in ${ms.toFixed(0)} ms = ${Math.round(TRANSITIONS / (ms / 1000))}/s, ${((ms * 1000) / TRANSITIONS).toFixed(1)} µs each`,
  );
  console.log(`  baseline, bare store writes: ${((floor * 1000) / TRANSITIONS).toFixed(1)} µs each`);
}

async function latency(
  label: string,
  store: StateStore & { get(id: string): State | undefined | Promise<State | undefined> },
  commands: TaskCommander & TaskCommandSource,
): Promise<number[]> {
  const handler = statefulHandler({
    store,
    commands,
    run: async (_task, ctx) => {
      for await (const m of ctx.commands) return m;
      return "release";
    },
  });
  const id = `lat-${label}`;
  const { ctx, stop } = context();
  const running: Promise<HandlerResult> = Promise.resolve(handler.run({ id, props: {} }, ctx));
  const samples: number[] = [];
  const deadline = Date.now() + 120_000;
  for (let i = 0; i < ROUNDS && Date.now() < deadline; i++) {
    const code = i % 2 === 0 ? "pause" : "run";
    const want = code === "pause" ? "paused" : "runnable";
    const t0 = performance.now();
    await commands.send(id, { code });
    while ((await store.get(id))?.code !== want) {
      if (Date.now() > deadline) throw new Error(`${label}: no ${want} after ${code}`);
      await new Promise((r) => setTimeout(r, 0));
    }
    samples.push(performance.now() - t0);
  }
  stop();
  await running;
  samples.sort((a, b) => a - b);
  const p99 = samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))]!;
  console.log(
    `command → stored (${label}): median ${median(samples).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms over ${samples.length} round trips`,
  );
  return samples;
}

async function pausedMemory(): Promise<void> {
  const store = new MemoryStateStore();
  const commands = new MemoryTaskCommands();
  const handler = statefulHandler({ store, commands, run: () => "pause" });
  const gc = (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc;
  gc?.(true);
  const before = process.memoryUsage().heapUsed;
  const stops: Array<() => void> = [];
  const runs: Promise<HandlerResult>[] = [];
  for (let i = 0; i < PAUSED; i++) {
    const { ctx, stop } = context();
    stops.push(stop);
    runs.push(Promise.resolve(handler.run({ id: `p${i}`, props: {} }, ctx)));
  }
  const deadline = Date.now() + 60_000;
  while (
    Date.now() < deadline &&
    [...Array(PAUSED).keys()].some((i) => handler.stateOf(`p${i}`)?.state.code !== "paused")
  ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  gc?.(true);
  const after = process.memoryUsage().heapUsed;
  console.log(
    `memory per resident paused task: ${((after - before) / PAUSED / 1024).toFixed(1)} KiB (${PAUSED} tasks, heap delta incl. state store)`,
  );
  for (const stop of stops) stop();
  await Promise.all(runs);
}

await throughput();
await latency("memory", new MemoryStateStore(), new MemoryTaskCommands());
await pausedMemory();

const etcd = await startEtcd();
try {
  const client = etcd.client();
  const ns = "/bench-statemachine";
  const keys = new Keys(ns);
  await client.put(keys.owner("lat-etcd")).value(encodeOwner("bench")).exec();
  const floor: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await client.put(`${ns}/floor`).value(String(i)).exec();
    await client.get(`${ns}/floor`).string();
    floor.push(performance.now() - t0);
  }
  await latency("etcd", new EtcdStateStore(client, ns), new EtcdTaskCommands(client, ns, "bench", silentLogger));
  console.log(`  baseline, one etcd put + get: median ${median(floor).toFixed(2)} ms`);
} finally {
  await etcd.stop();
}
