/**
 * Process pauses (SIGSTOP past the lease TTL) against real node processes and a real etcd:
 * handlers paced by ctx.sleep take no step after SIGCONT once another node took over, and a
 * paused stale owner's state write never replaces the new owner's.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Keys } from "../../src/coordinators/etcd/keys.ts";
import { EtcdTaskCommands } from "../../src/coordinators/etcd/task-commands.ts";
import { silentLogger } from "../../src/log.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import { Cleanup, makeClient, rawClient, uniqueNamespace } from "./helpers.ts";

const TTL = 2;
let etcd: EtcdServer;
let dir: string;
const cleanup = new Cleanup();

beforeAll(async () => {
  etcd = await startEtcd();
  dir = mkdtempSync(join(tmpdir(), "metafora-pause-"));
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface NodeProcess {
  readonly child: ChildProcess;
  output(): string;
  stepsFile: string;
}

function spawnNode(ns: string, node: string, mode: "paced" | "stateful", staleNode = ""): NodeProcess {
  const stepsFile = join(dir, `${ns.replace(/\//g, "_")}-${node}.jsonl`);
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dir, "fixtures", "paced-node.ts"),
      etcd.endpoint,
      ns,
      node,
      String(TTL),
      mode,
      stepsFile,
      staleNode,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  cleanup.add(child, (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    c.kill("SIGCONT");
    c.kill("SIGKILL");
    return new Promise((resolve) => c.once("exit", resolve));
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return { child, output: () => out, stepsFile };
}

interface Step {
  task: string;
  node: string;
  token: number;
  at: number;
}

function steps(file: string): Step[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Step];
      } catch {
        return []; // a line torn by SIGKILL at the end
      }
    });
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

test("a node SIGSTOPped past its TTL takes no step after SIGCONT: handlers paced by ctx.sleep stop first", async () => {
  const ns = uniqueNamespace("pause");
  const client = makeClient(etcd, ns, cleanup);
  const ids = ["p1", "p2", "p3", "p4"];
  const a = spawnNode(ns, "a", "paced");
  await waitFor("node a to register", () => a.output().includes("ready"), { timeout: 15_000 });
  await Promise.all(ids.map((id) => client.submitTask(id)));
  await waitFor("node a to step every task", () => new Set(steps(a.stepsFile).map((s) => s.task)).size === 4, {
    timeout: 15_000,
  });

  a.child.kill("SIGSTOP");
  // The claims node a held when it froze. After it rejoins, membership rebalancing may hand it
  // some tasks back under NEW claims (higher tokens): those steps are legitimate; only a step
  // under one of these old claims after SIGCONT would be a violation.
  const oldTokens = new Map(steps(a.stepsFile).map((s) => [s.task, s.token]));
  const stale = (s: Step): boolean => s.token <= (oldTokens.get(s.task) ?? -1);
  const b = spawnNode(ns, "b", "paced");
  await waitFor("node b to take over every task", () => new Set(steps(b.stepsFile).map((s) => s.task)).size === 4, {
    timeout: (TTL + 15) * 1000,
  });
  const resumedAt = Date.now();
  a.child.kill("SIGCONT");
  await waitFor("node a to end all 4 tasks", () => count(a.output(), "ended ") >= 4, { timeout: 15_000 });
  // Give any late step time to land in the file (the stop is synchronous on the first check).
  await staysFalse(
    "a step by node a under its old claim after SIGCONT",
    () => steps(a.stepsFile).some((s) => stale(s) && s.at >= resumedAt),
    1000,
  );

  const byA = steps(a.stepsFile);
  const byB = steps(b.stepsFile);
  expect(byA.length).toBeGreaterThan(0);
  for (const id of ids) {
    const firstB = byB.find((s) => s.task === id)!;
    const tokenA = byA.find((s) => s.task === id)!.token;
    expect(firstB.token).toBeGreaterThan(tokenA);
    // The history check: no step by the older owner after the newer owner's first step.
    expect(byA.filter((s) => s.task === id && stale(s) && s.at >= firstB.at)).toEqual([]);
  }
}, 60_000);

test("stateful: a paused stale owner's 'complete' is not stored; the new owner's 'paused' survives", async () => {
  const ns = uniqueNamespace("pause-sm");
  const keys = new Keys(ns);
  const client = makeClient(etcd, ns, cleanup);
  const raw = rawClient(etcd, cleanup);
  const id = "sm-1";
  const a = spawnNode(ns, "a", "stateful", "a");
  await waitFor("node a to register", () => a.output().includes("ready"), { timeout: 15_000 });
  await client.submitTask(id);
  await waitFor("node a to claim the task", () => a.output().includes(`claimed ${id}`), { timeout: 15_000 });
  await waitFor("its state to be recorded", async () => (await raw.get(keys.state(id)).string()) !== null);
  // A sits in its step (a 3 s plain timer, no ownership check), one step from "complete".
  a.child.kill("SIGSTOP");

  const b = spawnNode(ns, "b", "stateful", "a");
  await waitFor("node b to take the task over", () => b.output().includes(`claimed ${id}`), {
    timeout: (TTL + 15) * 1000,
  });
  const operator = new EtcdTaskCommands(raw, ns, "operator", silentLogger);
  await operator.send(id, { code: "pause" });
  await waitFor("b to store paused", async () => (await raw.get(keys.state(id)).string()) === '{"state":"paused"}', {
    timeout: 10_000,
  });

  a.child.kill("SIGCONT");
  await waitFor("a's step to return complete", () => a.output().includes("returned complete"), { timeout: 15_000 });
  await waitFor("a to end the task", () => a.output().includes(`ended ${id}`), { timeout: 15_000 });
  await staysFalse(
    "a's complete to replace b's paused",
    async () => (await raw.get(keys.state(id)).string()) !== '{"state":"paused"}',
    1000,
  );
  expect(await raw.get(keys.task(id)).string()).not.toBeNull(); // not deleted as done
  expect(a.output()).not.toContain(`ended ${id} done`);
}, 60_000);
