/**
 * Scale: 100,000 tasks on 10 nodes (separate processes, each a Consumer on the etcd
 * coordinator), one etcd, all on this machine. Prints, all from the same run:
 *  - the raw ceiling: claim transactions batched 64 claims each, 16 in flight, from one client;
 *  - the same ceiling while the nodes (frozen) mirror those claims: what etcd can do on this
 *    machine once every claim is also a watch event for each node;
 *  - bulk submit of every task (Client.submitTasks);
 *  - claims/s of the cluster as a fraction of that ceiling (nodes frozen during the submit, so
 *    every node starts with the whole backlog, then all unfrozen at once), and the spread;
 *  - RSS per node and per task, etcd's database size;
 *  - steady-state etcd requests per minute (etcd's /metrics on loopback);
 *  - start-up of an extra node joining the loaded cluster, to ready;
 *  - failover of a node holding ~1/10 of the tasks (SIGKILL → all running elsewhere);
 *  - graceful handoff of a node holding ~1/10 (SIGTERM → all running elsewhere).
 *
 *   bun bench/scale.ts [tasks=100000] [nodes=10] [leaseTtl=10] [claimConcurrency=256]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import type { EtcdClient } from "../src/coordinators/etcd/client.ts";
import { Keys, encodeOwner } from "../src/coordinators/etcd/keys.ts";
import {
  client,
  diffCounts,
  etcdRequestCounts,
  fmt,
  startEtcd,
  taskIds,
  until,
  type EtcdServer,
} from "./etcd-support.ts";

const TASKS = Number(process.argv[2] ?? 100_000);
const NODES = Number(process.argv[3] ?? 10);
const TTL = Number(process.argv[4] ?? 10);
const CONCURRENCY = Number(process.argv[5] ?? 256);
const CEILING_TASKS = Math.min(TASKS, 40_000);
const SUBMIT_CHUNK = 10_000;
const MiB = 1024 * 1024;
const NODE_NICE = Number(process.env.SCALE_NICE ?? 0);

interface NodeStats {
  rss: number;
  heapUsed: number;
  running: number;
  known: number;
  /** CPU time the node's process has used so far (user + system). */
  cpuMs: number;
}

class ScaleNode {
  readonly proc: ChildProcess;
  running = 0;
  readyMs: number | undefined;
  readonly spawnedAt = performance.now();
  readyAt: number | undefined;
  private tail = "";
  private statsWaiters: ((s: NodeStats) => void)[] = [];

  constructor(
    etcd: EtcdServer,
    namespace: string,
    readonly name: string,
    frozen: boolean,
  ) {
    const script = join(import.meta.dir, "scale-node.ts");
    // SCALE_PROFILE=dir: every node writes a CPU profile there when it exits (bench stops after the claims).
    const profile = process.env.SCALE_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.SCALE_PROFILE}`] : [];
    this.proc = spawn(
      process.execPath,
      [...profile, script, etcd.endpoint, namespace, name, String(TTL), String(CONCURRENCY), frozen ? "1" : "0"],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    // SCALE_NICE=n runs the nodes at that nice level, to model etcd on machines of its own
    // (here it shares two cores with ten nodes). Default 0: tried at 10, the nodes starved
    // instead and their keepalives went unconfirmed.
    if (this.proc.pid !== undefined) setPriority(this.proc.pid, NODE_NICE);
    this.proc.stdout?.on("data", (chunk: Buffer) => {
      const lines = (this.tail + chunk.toString()).split("\n");
      this.tail = lines.pop() ?? "";
      for (const line of lines) {
        const [kind, rest] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
        if (kind === "count") this.running = Number(rest);
        else if (kind === "ready") {
          this.readyMs = Number(rest);
          this.readyAt = performance.now();
        } else if (kind === "stats") this.statsWaiters.shift()?.(JSON.parse(rest) as NodeStats);
      }
    });
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async ready(): Promise<void> {
    await until(`${this.name} to start`, () => this.readyMs !== undefined || !this.alive, 120_000, 20);
    if (this.readyMs === undefined) throw new Error(`${this.name} exited during start-up`);
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** Counters; with `gc`, memory figures after a full GC. */
  stats(gc = false): Promise<NodeStats> {
    return new Promise((resolve) => {
      this.statsWaiters.push(resolve);
      this.send(gc ? "memstats" : "stats");
    });
  }

  async signal(sig: NodeJS.Signals): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.proc.once("exit", resolve));
    this.proc.kill(sig);
    await exited;
  }
}

/** `until`, and with SCALE_TRACE=1 what each node runs every 250 ms meanwhile. */
async function tracedUntil(what: string, probe: () => boolean, timeoutMs: number, intervalMs: number): Promise<number> {
  const t0 = performance.now();
  const trace = process.env.SCALE_TRACE
    ? setInterval(
        () =>
          console.log(
            `    +${fmt(performance.now() - t0)}: ${nodes.map((n) => (n.alive ? n.running : "-")).join(" ")}`,
          ),
        250,
      )
    : undefined;
  try {
    return await until(what, probe, timeoutMs, intervalMs);
  } finally {
    clearInterval(trace);
  }
}

const total = (nodes: readonly ScaleNode[]): number => nodes.reduce((n, x) => n + (x.alive ? x.running : 0), 0);
const rate = (n: number, ms: number): number => Math.round((n / ms) * 1000);

/**
 * The phases after the claims (join, failover, handoff) each report their figure or, when the
 * cluster does not get there in time, that they did not finish and what ran then; the next
 * phase still runs, and the bench exits 1.
 */
const failedPhases: string[] = [];
async function phase(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    failedPhases.push(name);
    const running = nodes.map((n) => (n.alive ? n.running : "-")).join(" / ");
    console.log(`  ${`${name}:`.padEnd(10)} did not finish: ${(err as Error).message}; running then: ${running}`);
  }
}

/**
 * Before a phase: every task running, and no node's count changed for QUIET_MS (the previous
 * phase's rebalance, e.g. towards the joiner, is over), so the phase measures itself alone.
 */
const QUIET_MS = 2000;
async function settled(): Promise<void> {
  let last = "";
  let since = performance.now();
  await tracedUntil(
    "every task to run, and no node's count to change for 2 s, before the phase",
    () => {
      const now = nodes.map((n) => (n.alive ? n.running : -1)).join(" ");
      if (now !== last) {
        last = now;
        since = performance.now();
      }
      return total(nodes) === TASKS && performance.now() - since >= QUIET_MS;
    },
    120_000,
    20,
  );
}
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MiB`;

async function dbSize(etcd: EtcdServer): Promise<number> {
  const text = await (await fetch(`${etcd.url}/metrics`)).text();
  const m =
    /^etcd_mvcc_db_total_size_in_bytes (\S+)$/m.exec(text) ??
    /^etcd_debugging_mvcc_db_total_size_in_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

/**
 * etcd's claim transaction at its best: 64 claims per txn, 16 txns in flight, from one client
 * that does nothing else, on tasks already submitted. Returns the ms it took.
 */
async function rawClaims(etcd: EtcdServer, ns: Keys, ids: readonly string[]): Promise<number> {
  const raw = etcd.client();
  const lease = await raw.leaseClient.leaseGrant({ TTL: 60 });
  const owner = Buffer.from(encodeOwner("ceiling"));
  const PER_TXN = 64;
  const IN_FLIGHT = 16;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ids.length) {
        const batch = ids.slice(next, next + PER_TXN);
        next += PER_TXN;
        const res = await raw.kv.txn({
          compare: batch.flatMap((id) => [
            { key: Buffer.from(ns.owner(id)), target: "Version" as const, result: "Equal" as const, version: 0 },
            { key: Buffer.from(ns.task(id)), target: "Version" as const, result: "Greater" as const, version: 0 },
          ]),
          success: batch.map((id) => ({
            request_put: { key: Buffer.from(ns.owner(id)), value: owner, lease: lease.ID },
          })),
        });
        if (!res.succeeded) throw new Error("ceiling claim transaction failed");
      }
    }),
  );
  const ms = performance.now() - t0;
  await raw.leaseClient.leaseRevoke({ ID: lease.ID });
  return ms;
}

/** submitTasks, SUBMIT_CHUNK per call; resolves with how many were created. */
async function submitInChunks(c: EtcdClient, ids: readonly string[]): Promise<number> {
  let created = 0;
  for (let i = 0; i < ids.length; i += SUBMIT_CHUNK) {
    const results = await c.submitTasks(ids.slice(i, i + SUBMIT_CHUNK).map((id) => ({ id })));
    created += results.filter((r) => r.result === "created").length;
  }
  return created;
}

/** The ceiling with nobody watching, and submitTasks' rate likewise. */
async function measureCeiling(etcd: EtcdServer): Promise<{ rate: number; ms: number; submitRate: number }> {
  const ns = new Keys("/scale-ceiling");
  const c = client(etcd, ns.ns);
  const ids = taskIds(CEILING_TASKS, "c");
  const s0 = performance.now();
  await submitInChunks(c, ids);
  const submitRate = rate(ids.length, performance.now() - s0);
  const ms = await rawClaims(etcd, ns, ids);
  await etcd.client().delete().prefix(`${ns.ns}/`);
  c.close();
  return { rate: rate(ids.length, ms), ms, submitRate };
}

/** CPU time (user + system) a process has used, from /proc (Linux). */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/**
 * The same ceiling while NODES frozen nodes mirror the namespace: every claim is a watch event
 * for each of them, and they share the machine's cores with etcd. No claim by a node can beat
 * this: it is what etcd does on this machine once the nodes only watch. On an etcd and nodes
 * of its own, stopped again before the bench's own phases (on the bench's etcd, its 40,000
 * deleted tasks made every later phase slower).
 */
async function measureWatchedCeiling(): Promise<{ rate: number; nodeCpuMs: number; etcdCpuMs: number }> {
  const own = await startEtcd();
  const ns = new Keys("/scale-watched");
  const watchers = Array.from({ length: NODES }, (_, i) => new ScaleNode(own, ns.ns, `watcher-${i + 1}`, true));
  try {
    await Promise.all(watchers.map((w) => w.ready()));
    const c = client(own, ns.ns);
    const ids = taskIds(CEILING_TASKS, "c");
    await submitInChunks(c, ids);
    c.close();
    const knownAll = async () =>
      (await Promise.all(watchers.map((w) => w.stats()))).every((s) => s.known === ids.length);
    await until("every watcher to see the ceiling's tasks", knownAll, 120_000, 200);
    const cpu0 = await Promise.all(watchers.map((w) => w.stats()));
    const etcd0 = processCpuMs(own.pid);
    const ms = await rawClaims(own, ns, ids);
    const cpu1 = await Promise.all(watchers.map((w) => w.stats()));
    const etcdCpuMs = processCpuMs(own.pid) - etcd0;
    const nodeCpuMs = cpu1.reduce((sum, s, i) => sum + s.cpuMs - cpu0[i]!.cpuMs, 0);
    return { rate: rate(ids.length, ms), nodeCpuMs, etcdCpuMs };
  } finally {
    await Promise.all(watchers.map((w) => w.signal("SIGKILL")));
    await own.stop();
  }
}

const etcd = await startEtcd();
const nodes: ScaleNode[] = [];
const benchStart = performance.now();
try {
  const ns = "/scale";
  console.log(
    `scale: ${TASKS} tasks, ${NODES} node processes at nice ${NODE_NICE} (claimConcurrency ${CONCURRENCY}, lease TTL ${TTL} s), etcd ${etcd.endpoint}`,
  );

  const ceiling = await measureCeiling(etcd);
  console.log(
    `  ceiling:   ${ceiling.rate} claims/s (${CEILING_TASKS} claims, 64 per txn, 16 txns in flight, one client; ${fmt(ceiling.ms)})`,
  );
  console.log(
    `  baseline:  submitTasks with nobody watching: ${ceiling.submitRate} submits/s (${CEILING_TASKS} tasks)`,
  );

  const watched = await measureWatchedCeiling();
  console.log(
    `  watched:   ${watched.rate} claims/s = ${((watched.rate / ceiling.rate) * 100).toFixed(0)} % of the ceiling: the same claims while ${NODES} frozen nodes mirror them ` +
      `(CPU meanwhile: etcd ${fmt(watched.etcdCpuMs)}, nodes ${fmt(watched.nodeCpuMs)} = ${((watched.nodeCpuMs * 1000) / (CEILING_TASKS * NODES)).toFixed(1)} µs per event per node)`,
  );

  const n0 = performance.now();
  for (let i = 1; i <= NODES; i++) nodes.push(new ScaleNode(etcd, ns, `node-${String(i).padStart(2, "0")}`, true));
  await Promise.all(nodes.map((n) => n.ready()));
  const startMs = performance.now() - n0;
  const idle = await Promise.all(nodes.map((n) => n.stats(true)));
  console.log(
    `  start:     ${NODES} nodes ready in ${fmt(startMs)} (empty namespace; idle RSS ${mib(Math.min(...idle.map((s) => s.rss)))}–${mib(Math.max(...idle.map((s) => s.rss)))})`,
  );

  // Bulk submit while the nodes are frozen: they see every task through their watch.
  const c = client(etcd, ns);
  const ids = taskIds(TASKS);
  const s0 = performance.now();
  const created = await submitInChunks(c, ids);
  const submitMs = performance.now() - s0;
  console.log(
    `  submit:    ${created} tasks in ${fmt(submitMs)} = ${rate(created, submitMs)} submits/s (submitTasks, ${SUBMIT_CHUNK} per call; goal < 10 s)`,
  );
  let beforeClaims: NodeStats[] = [];
  const seen = await until(
    "every node to see every task",
    async () => (beforeClaims = await Promise.all(nodes.map((n) => n.stats()))).every((s) => s.known >= TASKS),
    300_000,
    500,
  );
  console.log(`  watch:     every node saw every task ${fmt(seen)} after the submit returned`);
  // Memory with every task mirrored and none running: the running tasks' own cost is what grows after.
  const mirrored = await Promise.all(nodes.map((n) => n.stats(true)));
  beforeClaims = mirrored;

  const claimRequests0 = await etcdRequestCounts(etcd);
  const etcdCpu0 = processCpuMs(etcd.pid);
  const u0 = performance.now();
  for (const n of nodes) n.send("unfreeze");
  const claimMs = await tracedUntil("every task running", () => total(nodes) === TASKS, 300_000, 5).catch(
    (err: Error) => {
      throw new Error(
        `${err.message}; running then: ${nodes.map((n) => n.running).join(" / ")} = ${total(nodes)} of ${TASKS}`,
      );
    },
  );
  const claimRate = rate(TASKS, claimMs);
  const etcdClaimCpu = processCpuMs(etcd.pid) - etcdCpu0;
  const claimRequests = diffCounts(await etcdRequestCounts(etcd), claimRequests0);
  const spread = nodes.map((n) => n.running);
  const fair = TASKS / NODES;
  const worst = Math.max(...spread.map((x) => Math.abs(x - fair) / fair));
  console.log(
    `  claims:    all ${TASKS} running ${fmt(claimMs)} after unfreeze = ${claimRate} claims/s = ${((claimRate / ceiling.rate) * 100).toFixed(0)} % of the ceiling (goal >= 50 %), ${((claimRate / watched.rate) * 100).toFixed(0)} % of the watched ceiling`,
  );
  console.log(
    `  claim txns: ${claimRequests.get("KV.Txn") ?? 0} transactions for ${TASKS} claims (${Math.ceil(TASKS / 64)} if every batch of 64 won at once; ` +
      `KV.Range ${claimRequests.get("KV.Range") ?? 0})`,
  );
  console.log(`  submit→running: ${fmt(submitMs + seen + claimMs)} (submit + watch catch-up + claims)`);
  console.log(`  spread:    ${spread.join(" / ")} (fair ${Math.round(fair)}; worst ${(worst * 100).toFixed(1)} % off)`);
  void u0;

  if (process.env.SCALE_PROFILE) {
    for (const n of nodes) n.send("exit");
    await until("nodes to write their profiles", () => nodes.every((n) => !n.alive), 60_000, 50);
    process.exit(0);
  }

  const loaded = await Promise.all(nodes.map((n) => n.stats(true)));
  const claimCpu = loaded.map((s, i) => s.cpuMs - beforeClaims[i]!.cpuMs);
  console.log(
    `  node CPU:  ${fmt(claimCpu.reduce((a, b) => a + b, 0))} in all nodes during the ${fmt(claimMs)} of claims (${fmt(Math.min(...claimCpu))}–${fmt(Math.max(...claimCpu))} per node), etcd ${fmt(etcdClaimCpu)}; ` +
      `the machine has 2 cores (${fmt(2 * claimMs)} of CPU in that time)`,
  );
  const rss = loaded.map((s) => s.rss);
  const kib = (values: number[]): string =>
    `${(Math.min(...values) / 1024).toFixed(1)}–${(Math.max(...values) / 1024).toFixed(1)} KiB`;
  const perTask = loaded.map((s, i) => (s.rss - idle[i]!.rss) / Math.max(1, s.running));
  const heapPerRunning = loaded.map((s, i) => (s.heapUsed - mirrored[i]!.heapUsed) / Math.max(1, s.running));
  const rssPerRunning = loaded.map((s, i) => (s.rss - mirrored[i]!.rss) / Math.max(1, s.running));
  const heapPerMirrored = mirrored.map((s, i) => (s.heapUsed - idle[i]!.heapUsed) / TASKS);
  console.log(
    `  memory:    RSS per node ${mib(Math.min(...rss))}–${mib(Math.max(...rss))} (idle ${mib(idle[0]!.rss)}); heap ${mib(Math.min(...loaded.map((s) => s.heapUsed)))}–${mib(Math.max(...loaded.map((s) => s.heapUsed)))}; ` +
      `RSS growth per running task ${kib(perTask)} (each node also mirrors all ${TASKS} tasks)`,
  );
  console.log(
    `  per task:  running (after GC, from all mirrored to all running): heap ${kib(heapPerRunning)}, RSS ${kib(rssPerRunning)} (goal <= 4 KiB); ` +
      `mirrored, not running: heap ${kib(heapPerMirrored)} per task`,
  );
  console.log(`  etcd db:   ${mib(await dbSize(etcd))} (includes the ceiling's ${CEILING_TASKS} deleted tasks)`);

  const WINDOW = 10_000;
  const before = await etcdRequestCounts(etcd);
  await new Promise((r) => setTimeout(r, WINDOW));
  const steady = diffCounts(await etcdRequestCounts(etcd), before);
  const perMin = [...steady.values()].reduce((a, b) => a + b, 0) * (60_000 / WINDOW);
  const detail = [...steady].map(([k, v]) => `${k} ${Math.round(v * (60_000 / WINDOW))}`).join(", ");
  console.log(
    `  steady:    ${Math.round(perMin)} etcd requests/min with ${TASKS} running on ${NODES} nodes (${detail || "none"}; the bench's own /metrics reads excluded)`,
  );

  // SCALE_PROBE=1: etcd's answer time (a GET every 100 ms from the bench) while the node joins.
  const probeClient = process.env.SCALE_PROBE ? etcd.client() : undefined;
  let probing = probeClient !== undefined;
  const probe = (async () => {
    const p0 = performance.now();
    while (probing && probeClient) {
      const t = performance.now();
      await probeClient
        .get("/probe")
        .string()
        .catch(() => null);
      const ms = performance.now() - t;
      if (ms > 500) console.log(`    probe: etcd took ${fmt(ms)} to answer at +${fmt(t - p0)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const joiner = new ScaleNode(etcd, ns, "node-join", false);
  nodes.push(joiner);
  await phase("join", async () => {
    try {
      await joiner.ready();
    } finally {
      probing = false;
      await probe;
    }
    console.log(
      `  join:      an extra node ready ${fmt(joiner.readyAt! - joiner.spawnedAt)} after spawn (${joiner.readyMs} ms from its process start; lists ${TASKS} tasks; goal < 3 s)`,
    );
  });

  await phase("failover", async () => {
    await settled();
    const counts = nodes.filter((n) => n.alive).map((n) => n.running);
    console.log(
      `  before:    ${counts.length} nodes settled at ${Math.min(...counts)}–${Math.max(...counts)} tasks each (fair ${Math.round(TASKS / counts.length)})`,
    );
    const victim = [...nodes].sort((a, b) => b.running - a.running)[0]!;
    const held = victim.running;
    // When etcd ends the victim's lease: its marker goes with it. The lease ends TTL after the
    // last keepalive etcd got, which is up to a keepalive interval before the kill.
    const markers = await etcd.client().watch().key(new Keys(ns).node(victim.name)).create();
    let leaseEndedMs: number | undefined;
    const killedAt = performance.now();
    markers.on("delete", () => {
      leaseEndedMs ??= performance.now() - killedAt;
    });
    await victim.signal("SIGKILL");
    const exitedAt = performance.now();
    const failMs = await tracedUntil(
      "the killed node's tasks running elsewhere",
      () => total(nodes) === TASKS,
      120_000,
      5,
    );
    await markers.cancel();
    const ended =
      leaseEndedMs === undefined
        ? ""
        : `; its lease ended ${fmt(leaseEndedMs)} after the kill, all ran elsewhere ${fmt(exitedAt - killedAt + failMs - leaseEndedMs)} after that`;
    console.log(
      `  failover:  SIGKILL of ${victim.name} holding ${held}: all running elsewhere after ${fmt(failMs)} = TTL ${failMs >= TTL * 1000 ? "+" : "−"} ${fmt(Math.abs(failMs - TTL * 1000))} (goal TTL + 1 s)${ended}`,
    );
  });

  await phase("handoff", async () => {
    await settled();
    const leaver = [...nodes].filter((n) => n.alive).sort((a, b) => b.running - a.running)[0]!;
    const handed = leaver.running;
    const exited = leaver.signal("SIGTERM");
    const others = nodes.filter((n) => n !== leaver);
    const handMs = await tracedUntil(
      "the stopped node's tasks running elsewhere",
      () => total(others) === TASKS,
      120_000,
      5,
    );
    await exited;
    console.log(
      `  handoff:   SIGTERM to ${leaver.name} holding ${handed}: all running elsewhere after ${fmt(handMs)} (goal 1 s)`,
    );
  });
  c.close();
  console.log(
    `  bench took ${fmt(performance.now() - benchStart)}${failedPhases.length ? `; did not finish: ${failedPhases.join(", ")}` : ""}`,
  );
  if (failedPhases.length) process.exitCode = 1;
} finally {
  await Promise.all(nodes.map((n) => n.signal("SIGKILL")));
  await etcd.stop();
}
