/**
 * Bad values in every etcd key kind a namespace holds (malformed JSON, wrong types, huge
 * values), written straight into a real etcd next to a running node (the compiled binary).
 * Each case asserts that the node keeps running, that the operator CLI says what is wrong
 * with which key and how to fix it (exit code and message), and that the sentinel tasks (a
 * plain running task and a stateful one with its state) did not change.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Etcd3 } from "etcd3";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import {
  expectMentions,
  makeWorkspace,
  metaforaBinary,
  runCli,
  startNode,
  type CliResult,
  type Workspace,
} from "./support.ts";

const NS = "/bad-keys";
const HANDLERS = {
  "work.ts": `export default { async run(task, ctx) { await new Promise((r) => ctx.signal.addEventListener("abort", r)); return "release"; } };`,
  "sm.ts": `import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({ async run(task, ctx) { for await (const m of ctx.commands) return m; return "release"; } });`,
};

let etcd: EtcdServer;
let kv: Etcd3;
let ws: Workspace;
let binary: string;
let env: Record<string, string>;
let node: ReturnType<typeof startNode>;
let base: string;

const cli = (...args: string[]): Promise<CliResult> => runCli(binary, args, { cwd: ws.dir, env, timeout: 30_000 });

interface Row {
  id: string;
  props: Record<string, unknown>;
  owner?: string;
  token?: number;
  waiting?: string;
  propsError?: string;
}
async function rows(): Promise<Row[]> {
  const r = await cli("tasks", "--json");
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Row[];
}

/** What no bad key may change: the sentinels' rows (owner, token, props) and sm:1's state. */
async function sentinel(): Promise<string> {
  const all = await rows();
  const state = await kv.get(`${NS}/state/sm:1`).string();
  return JSON.stringify({ rows: all.filter((r) => r.id === "work:good" || r.id === "sm:1"), state });
}

async function alive(): Promise<void> {
  const res = await fetch(`${base}/readyz`);
  expect(res.status, node.output().slice(-2000)).toBe(200);
}

let baseline: string;

beforeAll(async () => {
  [etcd, binary] = await Promise.all([startEtcd(), metaforaBinary()]);
  kv = etcd.client();
  ws = makeWorkspace(HANDLERS);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = {
    METAFORA_ETCD_ENDPOINTS: etcd.endpoint,
    METAFORA_NAMESPACE: NS,
    METAFORA_NODE: "keys-node",
    METAFORA_HTTP: `127.0.0.1:${port}`,
  };
  node = startNode(binary, { cwd: ws.dir, env });
  await node.waitReady(base, 30_000);
  for (const id of ["work:good", "sm:1"]) expect((await cli("submit", id)).code).toBe(0);
  await waitFor(
    "sentinels running, sm:1 with a state",
    async () =>
      (await rows()).filter((r) => r.owner === "keys-node").length === 2 &&
      (await kv.get(`${NS}/state/sm:1`).string()) !== null,
    { timeout: 20_000 },
  );
  baseline = await sentinel();
}, 120_000);

afterAll(async () => {
  await node?.stop();
  await etcd?.stop();
  ws?.remove();
});

interface KeyCase {
  name: string;
  /** Keys (under the namespace) and values to write; a value null means "put with no lease" is irrelevant: all puts are lease-less. */
  put: Record<string, string>;
  /** Then check what the operator sees. */
  check(): Promise<void>;
}

const big = (n: number): string => "x".repeat(n);

const CASES: KeyCase[] = [
  {
    name: "tasks/T/props: malformed JSON",
    put: { "tasks/work:p1": "", "tasks/work:p1/props": "{bad" },
    async check() {
      const row = (await rows()).find((r) => r.id === "work:p1")!;
      expect(row.props).toEqual({});
      expectMentions(
        row.propsError!,
        [`${NS}/tasks/work:p1/props`, "not JSON", "put a JSON object there", "metafora delete work:p1"],
        "props",
      );
      const table = await cli("tasks");
      expect(table.stdout).toContain("(unreadable, see below)");
      expect(table.stdout).toContain(`work:p1: props at ${NS}/tasks/work:p1/props are not JSON`);
    },
  },
  {
    name: "tasks/T/props: wrong type (an array)",
    put: { "tasks/work:p2": "", "tasks/work:p2/props": "[1,2]" },
    async check() {
      expectMentions((await rows()).find((r) => r.id === "work:p2")!.propsError!, ["not a JSON object"], "props");
    },
  },
  {
    name: "tasks/T/props: a huge but valid object (900 KB) is listed and runs",
    put: { "tasks/work:huge": "", "tasks/work:huge/props": JSON.stringify({ blob: big(900_000) }) },
    async check() {
      await waitFor(
        "work:huge claimed",
        async () => (await rows()).some((r) => r.id === "work:huge" && r.owner === "keys-node"),
        { timeout: 15_000 },
      );
    },
  },
  {
    name: "tasks/T/owner: garbage and no lease",
    put: { "tasks/work:o1": "", "tasks/work:o1/owner": "garbage" },
    async check() {
      const row = (await rows()).find((r) => r.id === "work:o1")!;
      expect(row.owner).toBeUndefined();
      expectMentions(
        row.waiting!,
        [
          `owner key ${NS}/tasks/work:o1/owner`,
          "unreadable value",
          "no lease",
          `etcdctl del ${NS}/tasks/work:o1/owner`,
          "metafora delete work:o1",
        ],
        "owner",
      );
      expect((await cli("tasks")).stdout).toContain("work:o1: waiting: owner key");
    },
  },
  {
    name: 'tasks/T/owner: wrong type ({"node": 5})',
    put: { "tasks/work:o2": "", "tasks/work:o2/owner": '{"node":5}' },
    async check() {
      expectMentions(
        (await rows()).find((r) => r.id === "work:o2")!.waiting!,
        ["unreadable value", '{\\"node\\":5}', "no lease"],
        "owner",
      );
    },
  },
  {
    name: "tasks/T/owner: a huge garbage value is shown shortened",
    put: { "tasks/work:o3": "", "tasks/work:o3/owner": big(200_000) },
    async check() {
      const waiting = (await rows()).find((r) => r.id === "work:o3")!.waiting!;
      expect(waiting).toContain("...");
      expect(waiting.length).toBeLessThan(600);
    },
  },
  {
    name: "tasks/T (the task marker) with a huge value",
    put: { "tasks/work:m1": big(500_000) },
    async check() {
      await waitFor(
        "work:m1 claimed",
        async () => (await rows()).some((r) => r.id === "work:m1" && r.owner === "keys-node"),
        { timeout: 15_000 },
      );
    },
  },
  {
    name: "tasks/T/commands: malformed JSON for a running stateful task",
    put: { "tasks/sm:1/commands": "{not a message" },
    async check() {
      await waitFor(
        "the node deletes and logs the bad command",
        () => node.output().includes('deleted a malformed command for task \\"sm:1\\"'),
        { timeout: 10_000 },
      );
    },
  },
  {
    name: "tasks/T/commands: wrong type",
    put: { "tasks/sm:1/commands": '{"command":42}' },
    async check() {},
  },
  {
    name: "nodes/M/commands/N: malformed JSON",
    put: { "nodes/keys-node/commands/1": "{{{" },
    async check() {
      await waitFor(
        "dropped, naming the key",
        () => node.output().includes(`dropping malformed node command at ${NS}/nodes/keys-node/commands/1`),
        { timeout: 10_000 },
      );
    },
  },
  {
    name: "nodes/M/commands/N: wrong type and a huge value",
    put: { "nodes/keys-node/commands/2": '{"command":["freeze"]}', "nodes/keys-node/commands/3": big(300_000) },
    async check() {
      await waitFor("both dropped", () => node.output().includes(`${NS}/nodes/keys-node/commands/3`), {
        timeout: 10_000,
      });
      expect(node.output()).not.toContain(big(1000));
    },
  },
  {
    name: "nodes/M/_metafora: garbage for a node that is not there",
    put: { "nodes/ghost/_metafora": "garbage" },
    async check() {
      const r = await cli("nodes", "--json");
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name)).toContain("keys-node");
    },
  },
  {
    name: "_metafora and tasks/_metafora: garbage",
    put: { _metafora: "garbage", "tasks/_metafora": "{" },
    async check() {
      const r = await cli("tasks", "--json");
      expect(r.code).toBe(0);
    },
  },
  {
    name: "state/T: malformed JSON: resume, kill and state say so and name the fix; state reset clears it",
    put: { "tasks/sm:s1": "", "state/sm:s1": "{broken" },
    async check() {
      for (const cmd of ["resume", "kill"]) {
        const r = await cli(cmd, "sm:s1");
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expectMentions(
          r.stderr,
          [
            `cannot ${cmd} task "sm:s1"`,
            "stored state cannot be read",
            `${NS}/state/sm:s1`,
            "metafora state reset sm:s1",
          ],
          cmd,
        );
        expect(r.stdout).not.toContain("sent");
      }
      const shown = await cli("state", "sm:s1");
      expect(shown.code).toBe(1);
      expect(shown.stderr).toContain(`${NS}/state/sm:s1`);
      const reset = await cli("state", "reset", "sm:s1");
      expect(reset.code, reset.stderr).toBe(0);
      expect(await kv.get(`${NS}/state/sm:s1`).string()).toBeNull();
    },
  },
  {
    name: "state/T: wrong types; a submit over it is refused until reset",
    put: { "state/sm:s2": '{"state":5}' },
    async check() {
      const r = await cli("submit", "sm:s2");
      expect(r.code).toBe(1);
      expectMentions(
        r.stderr,
        ['task "sm:s2" has a stored state that cannot be read', "metafora state reset sm:s2"],
        "submit",
      );
      expect((await rows()).some((t) => t.id === "sm:s2")).toBe(false);
      expect((await cli("state", "reset", "sm:s2")).code).toBe(0);
      expect((await cli("submit", "sm:s2")).code).toBe(0);
    },
  },
  {
    name: "state/T: terminal state; a submit is refused naming state reset",
    put: { "state/sm:s3": '{"state":"completed"}' },
    async check() {
      const r = await cli("submit", "sm:s3");
      expect(r.code).toBe(1);
      expectMentions(
        r.stderr,
        ["already ran to the end", "stored state: completed", "metafora state reset sm:s3"],
        "submit",
      );
    },
  },
];

describe("bad values in every etcd key kind", () => {
  for (const c of CASES) {
    test(c.name, async () => {
      for (const [key, value] of Object.entries(c.put)) await kv.put(`${NS}/${key}`).value(value);
      await c.check();
      await alive();
      expect(await sentinel()).toBe(baseline);
    }, 60_000);
  }

  test("the node never crashed or restarted its sentinels, and logged no stack for bad keys", () => {
    expect(node.proc.exitCode).toBeNull();
    const stacks = node
      .output()
      .split("\n")
      .filter((l) => /"level":"(warn|error)"/.test(l) && /\\n\s+at /.test(l));
    expect(stacks).toEqual([]);
  });
});
