/**
 * End-to-end, embedded coordinator: the compiled binary run from a temporary folder outside
 * the repository, driven through its CLI and HTTP API like an operator would.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { freePort } from "../support/ports.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import { metaforaBinary } from "./support/binary.ts";
import { runCli, startNode, type NodeProcess } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

let bin: string;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  bin = await metaforaBinary();
}, 240_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  ws: Workspace;
  url: string;
  env: Record<string, string>;
  start(extraEnv?: Record<string, string>): NodeProcess;
  cli(...args: string[]): ReturnType<typeof runCli>;
}

async function setup(handlers: Record<string, string>, env: Record<string, string> = {}): Promise<Setup> {
  const ws = makeWorkspace(handlers);
  cleanups.push(() => ws.remove());
  const port = await freePort();
  const fullEnv = { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "n1", ...env };
  return {
    ws,
    url: `http://127.0.0.1:${port}`,
    env: fullEnv,
    start(extraEnv = {}) {
      const node = startNode(bin, { cwd: ws.dir, env: { ...fullEnv, ...extraEnv } });
      cleanups.push(() => node.stop());
      return node;
    },
    cli: (...args: string[]) => runCli(bin, args, { cwd: ws.dir, env: fullEnv }),
  };
}

interface TaskRow {
  id: string;
  owner?: string;
  token?: number;
}

async function tasksJson(s: Setup): Promise<TaskRow[]> {
  const res = await s.cli("tasks", "--json");
  expect(res.code).toBe(0);
  const parsed = JSON.parse(res.stdout) as TaskRow[] | { tasks: TaskRow[] };
  return Array.isArray(parsed) ? parsed : parsed.tasks;
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

describe("embedded coordinator, compiled binary", () => {
  test("a task submitted with the CLI runs and is listed; SIGTERM releases it and exits 0; a restart resumes it", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker });
    const node = s.start();
    await node.waitReady(s.url);

    const submit = await s.cli("submit", "worker:a");
    expect(submit.code).toBe(0);
    await node.waitOutput("started worker:a");
    const listed = await waitFor("worker:a owned by n1", async () =>
      (await tasksJson(s)).find((t) => t.id === "worker:a" && t.owner === "n1"),
    );
    expect(listed.token).toBeGreaterThan(0);

    node.signal("SIGTERM");
    const exit = await node.exited;
    expect(exit.code).toBe(0);
    expect(node.output()).toContain("stopping worker:a"); // the handler saw its signal and returned
    expect(node.output()).toContain("shut down cleanly");

    const again = s.start();
    await again.waitReady(s.url);
    await again.waitOutput("started worker:a");
    const resumed = await waitFor("worker:a owned again", async () =>
      (await tasksJson(s)).find((t) => t.id === "worker:a" && t.owner === "n1"),
    );
    // Fencing tokens keep increasing across restarts.
    expect(resumed.token!).toBeGreaterThan(listed.token!);
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 90_000);

  test("kill -9 while submits are in flight loses no acknowledged task, and a paused state survives it", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker, "job.ts": STATEFUL_JOB });
    const node = s.start();
    await node.waitReady(s.url);

    // A stateful task, paused: its state must survive the crash.
    expect((await s.cli("submit", "job:nightly")).code).toBe(0);
    await node.waitOutput("job started job:nightly");
    expect((await s.cli("pause", "job:nightly")).code).toBe(0);
    await waitFor("job:nightly paused", async () =>
      (await s.cli("state", "job:nightly", "--json")).stdout.includes('"paused"'),
    );

    // Submits in flight from 8 concurrent clients; SIGKILL once 1,000 are acknowledged.
    const acknowledged: string[] = [];
    let killed = false;
    const submitter = async (worker: number): Promise<void> => {
      for (let i = 0; i < 400 && !killed; i++) {
        const id = `worker:w${worker}-${i}`;
        try {
          const res = await fetch(`${s.url}/api/tasks`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id, props: { n: i } }),
            signal: AbortSignal.timeout(5000),
          });
          if (res.status === 201) acknowledged.push(id);
        } catch {
          return; // the node died under us: this submit was never acknowledged
        }
        if (acknowledged.length >= 1000 && !killed) {
          killed = true;
          node.signal("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => submitter(w)));
    if (!killed) node.signal("SIGKILL");
    expect((await node.exited).signal).toBe("SIGKILL");
    expect(acknowledged.length).toBeGreaterThanOrEqual(1000);

    const again = s.start();
    await again.waitReady(s.url);
    const after = await tasksJson(s);
    const ids = new Set(after.map((t) => t.id));
    const missing = acknowledged.filter((id) => !ids.has(id));
    expect(missing).toEqual([]);
    expect(ids.has("job:nightly")).toBe(true);
    // Every restored task runs again here.
    await waitFor(
      "every acknowledged task running again",
      async () => {
        const owned = new Set((await tasksJson(s)).filter((t) => t.owner === "n1").map((t) => t.id));
        return acknowledged.every((id) => owned.has(id));
      },
      { timeout: 30_000, interval: 250 },
    );
    // Still paused after the crash, and resumable.
    const state = await s.cli("state", "job:nightly", "--json");
    expect(state.stdout).toContain('"paused"');
    expect(count(again.output(), "job started job:nightly")).toBe(0);
    expect((await s.cli("resume", "job:nightly")).code).toBe(0);
    await again.waitOutput("job started job:nightly");
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 120_000);

  test("handlers submit tasks through ctx.client; their submits and their 'done' survive kill -9", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker, "spawner.ts": SPAWNER });
    const node = s.start();
    await node.waitReady(s.url);
    expect((await s.cli("submit", "spawner:p1")).code).toBe(0);
    await node.waitOutput("started worker:child-of-spawner:p1");
    await waitFor("spawner:p1 done and gone", async () => !(await tasksJson(s)).some((t) => t.id === "spawner:p1"));
    node.signal("SIGKILL");
    await node.exited;

    const again = s.start();
    await again.waitReady(s.url);
    const ids = (await tasksJson(s)).map((t) => t.id);
    expect(ids).toEqual(["worker:child-of-spawner:p1"]); // the child persisted, the finished parent did not come back
    await again.waitOutput("started worker:child-of-spawner:p1");
    expect(again.output()).not.toContain("spawning from spawner:p1");
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 60_000);

  test("declarative [[tasks]] are submitted at start-up if absent, and only then", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker });
    s.ws.writeConfig(
      `[[tasks]]\nid = "worker:declared"\n\n[[tasks]]\nid = "nightly"\nhandler = "worker"\nprops = { depth = 2 }\n`,
    );
    const node = s.start();
    await node.waitReady(s.url);
    await node.waitOutput("started worker:declared");
    await node.waitOutput("started nightly"); // routed by its handler prop
    expect(node.output()).toContain("declarative tasks: 2 submitted, 0 already present or failed");
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);

    const again = s.start();
    await again.waitReady(s.url);
    await again.waitOutput("started nightly");
    expect(again.output()).toContain("declarative tasks: 0 submitted, 2 already present or failed");
    const rows = await tasksJson(s);
    expect(rows.map((t) => t.id).sort()).toEqual(["nightly", "worker:declared"]);
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 60_000);

  test("max_tasks caps the running tasks; a freed slot is filled", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker }, { METAFORA_MAX_TASKS: "2" });
    const node = s.start();
    await node.waitReady(s.url);
    for (const id of ["worker:m1", "worker:m2", "worker:m3"]) expect((await s.cli("submit", id)).code).toBe(0);
    const owned = async () => (await tasksJson(s)).filter((t) => t.owner === "n1").map((t) => t.id);
    await waitFor("two tasks running", async () => (await owned()).length === 2);
    await staysFalse("a third task running", async () => (await owned()).length > 2, 1500, 100);
    const [first] = await owned();
    expect((await s.cli("delete", first!)).code).toBe(0);
    await waitFor("the third task takes the freed slot", async () => {
      const now = await owned();
      return now.length === 2 && !now.includes(first!);
    });
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
  }, 60_000);

  test("SIGTSTP freezes the node (no new claims, running tasks keep running); SIGCONT unfreezes it", async () => {
    const s = await setup({ "worker.ts": HANDLERS.worker });
    const node = s.start();
    await node.waitReady(s.url);
    expect((await s.cli("submit", "worker:before")).code).toBe(0);
    await node.waitOutput("started worker:before");

    node.signal("SIGTSTP");
    await node.waitOutput("SIGTSTP: freezing");
    expect((await s.cli("submit", "worker:during")).code).toBe(0);
    await staysFalse(
      "worker:during claimed while frozen",
      () => node.output().includes("started worker:during"),
      1500,
      50,
    );
    expect(node.output()).not.toContain("stopping worker:before");

    node.signal("SIGCONT");
    await node.waitOutput("started worker:during");
    node.signal("SIGTERM");
    expect((await node.exited).code).toBe(0);
  }, 60_000);

  test("a task command no handler has taken yet survives kill -9 and is applied after the restart", async () => {
    const s = await setup({ "job.ts": STATEFUL_JOB });
    const node = s.start();
    await node.waitReady(s.url);
    // Frozen, the node does not claim: the command has nobody to take it and must wait.
    node.signal("SIGTSTP");
    await node.waitOutput("SIGTSTP: freezing");
    expect((await s.cli("submit", "job:later")).code).toBe(0);
    expect((await s.cli("pause", "job:later")).code).toBe(0);
    expect(node.output()).not.toContain("job started job:later");
    expect((await s.cli("state", "job:later", "--json")).stdout).not.toContain('"paused"');

    node.signal("SIGKILL");
    expect((await node.exited).signal).toBe("SIGKILL");

    const again = s.start();
    await again.waitReady(s.url);
    await again.waitOutput("1 waiting command(s) restored");
    await waitFor("job:later paused by the command sent before the crash", async () =>
      (await s.cli("state", "job:later", "--json")).stdout.includes('"paused"'),
    );
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
  }, 90_000);
});

/** Submits a follow-up task through ctx.client, then finishes. */
const SPAWNER = `
export default {
  async run(task, ctx) {
    ctx.log.info("spawning from " + task.id);
    await ctx.client.submitTask("worker:child-of-" + task.id);
    return "done";
  },
};
`;

/** A stateful handler that runs until stopped or commanded; logs each start. */
const STATEFUL_JOB = `
import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({
  async run(task, ctx) {
    ctx.log.info("job started " + task.id);
    const next = await ctx.commands[Symbol.asyncIterator]().next();
    return next.done ? "release" : next.value;
  },
});
`;
