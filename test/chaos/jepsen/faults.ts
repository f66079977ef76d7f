/**
 * The faults: each one injected, held for a bounded time, then undone, and recorded with its
 * start and end (monotonic ms). Durations derive from the lease TTL, never from a guess about
 * how fast the machine is: "past the TTL" means TTL + a random 1–3.5 s.
 */
import type { Cluster } from "./cluster.ts";
import { NAMESPACE } from "./cluster.ts";
import { sleep } from "../../support/wait.ts";
import { type FaultEvent, type FaultKind, monoNow } from "./history.ts";
import type { Random } from "./random.ts";

export const FAULT_KINDS: readonly FaultKind[] = [
  "node-kill",
  "node-pause",
  "etcd-pause",
  "etcd-restart",
  "lease-revoke",
  "compaction",
  "owner-delete",
  "node-term",
];

/** The faults of a run, in rounds: every kind once per round, in a seeded random order. */
export class FaultSchedule {
  private round: FaultKind[] = [];
  constructor(
    private readonly rng: Random,
    private readonly kinds: readonly FaultKind[] = FAULT_KINDS,
  ) {}
  next(): FaultKind {
    if (this.round.length === 0) {
      this.round = [...this.kinds];
      for (let i = this.round.length - 1; i > 0; i--) {
        const j = Math.floor(this.rng.next() * (i + 1));
        [this.round[i], this.round[j]] = [this.round[j]!, this.round[i]!];
      }
    }
    return this.round.shift()!;
  }
}

/** Bring a node back after it went away: once its old registration has expired, spawn it again. */
export async function restartNode(cluster: Cluster, name: string): Promise<void> {
  // A node refuses to start while its name is still registered (the killed process's lease
  // lives until the TTL runs out).
  await cluster.waitNameFree(name, 3 * cluster.ttlMs + 10_000);
  await cluster.spawnNode(name);
}

async function stopAndRestart(cluster: Cluster, name: string, sig: "SIGKILL" | "SIGTERM"): Promise<string> {
  cluster.signal(name, sig, { expectExit: true });
  const graceMs = sig === "SIGKILL" ? 10_000 : 2 * cluster.ttlMs + 10_000; // shutdown timeout is 2 TTL
  let detail = "";
  if (!(await cluster.waitExit(name, graceMs))) {
    detail = `still running ${graceMs} ms after ${sig}; SIGKILLed; `;
    cluster.signal(name, "SIGKILL", { expectExit: true });
    await cluster.waitExit(name, 10_000);
  }
  await restartNode(cluster, name);
  return `${detail}restarted`;
}

/** Live nodes that run tasks (a fault on an idle node shows nothing), else every live node. */
async function busyNodes(cluster: Cluster): Promise<string[]> {
  const live = cluster.liveNodes();
  try {
    const owners = new Set([...(await cluster.owners()).values()].map((o) => o.node));
    const busy = live.filter((n) => owners.has(n));
    return busy.length > 0 ? busy : live;
  } catch {
    return live;
  }
}

/** Inject one fault of `kind`, wait for it to end, and return its record (not yet written). */
export async function runFault(cluster: Cluster, rng: Random, id: number, kind: FaultKind): Promise<FaultEvent> {
  const live = await busyNodes(cluster);
  const ttl = cluster.ttlMs;
  let start = monoNow();
  let target = "etcd";
  let detail = "";
  const pastTtl = (): number => ttl + rng.between(1000, 3500);
  try {
    switch (kind) {
      case "node-kill":
      case "node-term": {
        target = rng.pick(live);
        start = monoNow();
        detail = await stopAndRestart(cluster, target, kind === "node-kill" ? "SIGKILL" : "SIGTERM");
        break;
      }
      case "node-pause": {
        target = rng.pick(live);
        const hold = pastTtl();
        start = monoNow();
        cluster.signal(target, "SIGSTOP", { expectExit: false });
        await sleep(hold);
        cluster.signal(target, "SIGCONT", { expectExit: false });
        detail = `stopped for ${Math.round(hold)} ms`;
        break;
      }
      case "etcd-pause": {
        const hold = pastTtl();
        start = monoNow();
        cluster.etcd.pause();
        await sleep(hold);
        cluster.etcd.resume();
        detail = `stopped for ${Math.round(hold)} ms`;
        break;
      }
      case "etcd-restart": {
        const down = rng.between(500, ttl);
        start = monoNow();
        await cluster.etcd.kill();
        await sleep(down);
        await cluster.etcd.restart();
        detail = `down for ${Math.round(down)} ms, restarted on its data dir`;
        break;
      }
      case "lease-revoke": {
        target = rng.pick(live);
        const reg = await cluster.registration(target);
        start = monoNow();
        if (!reg) detail = "not registered at the time; nothing revoked";
        else {
          await cluster.revokeLease(reg.lease);
          detail = `lease ${reg.lease} revoked`;
        }
        break;
      }
      case "compaction": {
        start = monoNow();
        detail = `compacted at revision ${await cluster.compact()}`;
        break;
      }
      case "owner-delete": {
        const owners = [...(await cluster.owners())];
        if (owners.length === 0) {
          target = "-";
          detail = "no owned task; nothing deleted";
          break;
        }
        const [task, owner] = rng.pick(owners);
        target = task;
        start = monoNow();
        await cluster.deleteKey(`${NAMESPACE}/tasks/${task}/owner`);
        detail = `owner ${owner.node}#${owner.token} deleted`;
        break;
      }
    }
  } catch (err) {
    detail += `${detail ? "; " : ""}harness error: ${(err as Error).message.split("\n")[0]!.slice(0, 1500)}`;
  }
  const end = monoNow();
  return { k: "fault", id, kind, target, start, end, detail, wall: Math.round(Date.now() - (end - start)) };
}
