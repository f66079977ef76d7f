/**
 * Bad input to a running node's HTTP API and operator CLI: strict bodies, ids, commands,
 * resubmits of finished tasks, unknown handlers, and a handler that hands its task back at
 * once. One embedded node (the compiled binary) serves every case; each asserts the status,
 * that the message names the field and what is expected, and that the sentinel tasks (a
 * running plain task and a running stateful one) and their state did not change.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import { expectMentions, makeWorkspace, metaforaBinary, runCli, startNode, type Workspace } from "./support.ts";

const TOKEN = "bad-input-token";
const HANDLERS = {
  "keep.ts": `export default { async run(task, ctx) { await new Promise((r) => ctx.signal.addEventListener("abort", r)); return "release"; } };`,
  "sm.ts": `import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({ async run(task, ctx) { for await (const m of ctx.commands) return m; return "release"; } });`,
  "fin.ts": `import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({ async run() { return "complete"; } });`,
  "bounce.ts": `export default { name: "bounce", run: async () => "release" };`,
};

interface HttpCase {
  name: string;
  method: string;
  path: string;
  /** An object is sent as JSON; a string as it is. */
  body?: unknown;
  contentType?: string;
  /** Send the bearer token (default true). */
  auth?: boolean;
  status: number;
  mentions: (string | RegExp)[];
}

const CASES: HttpCase[] = [
  {
    name: "submit: misspelt field",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x", prop: { a: 1 } },
    status: 400,
    mentions: ['unknown field "prop"', 'did you mean "props"', "allowed: id, props, handler"],
  },
  {
    name: "submit: several unknown fields",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x", a: 1, b: 2 },
    status: 400,
    mentions: ['unknown fields "a", "b"', "allowed: id, props, handler"],
  },
  {
    name: "submit: no id",
    method: "POST",
    path: "/api/tasks",
    body: {},
    status: 400,
    mentions: ["id must be a non-empty string", "expected a task id"],
  },
  {
    name: "submit: id is a number",
    method: "POST",
    path: "/api/tasks",
    body: { id: 42 },
    status: 400,
    mentions: ["id must be a non-empty string, got number"],
  },
  {
    name: "submit: id '..'",
    method: "POST",
    path: "/api/tasks",
    body: { id: ".." },
    status: 400,
    mentions: ["id is reserved", '".."'],
  },
  {
    name: "submit: id '.'",
    method: "POST",
    path: "/api/tasks",
    body: { id: "." },
    status: 400,
    mentions: ["id is reserved"],
  },
  {
    name: "submit: id '_metafora'",
    method: "POST",
    path: "/api/tasks",
    body: { id: "_metafora" },
    status: 400,
    mentions: ["reserved"],
  },
  {
    name: "submit: id with '/'",
    method: "POST",
    path: "/api/tasks",
    body: { id: "a/b" },
    status: 400,
    mentions: ["must not contain '/'"],
  },
  {
    name: "submit: id with a NUL",
    method: "POST",
    path: "/api/tasks",
    body: { id: "a\u0000b" },
    status: 400,
    mentions: ["control characters"],
  },
  {
    name: "submit: id with a newline",
    method: "POST",
    path: "/api/tasks",
    body: { id: "a\nb" },
    status: 400,
    mentions: ["control characters"],
  },
  {
    name: "submit: id with a lone surrogate",
    method: "POST",
    path: "/api/tasks",
    body: '{"id":"\\ud800x"}',
    status: 400,
    mentions: ["lone surrogate"],
  },
  {
    name: "submit: id too long",
    method: "POST",
    path: "/api/tasks",
    body: { id: "k".repeat(1025) },
    status: 400,
    mentions: ["1025 bytes long, more than 1024"],
  },
  {
    name: "submit: id with edge spaces",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:1 " },
    status: 400,
    mentions: ["white space"],
  },
  {
    name: "submit: props an array",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x", props: [1] },
    status: 400,
    mentions: ["props must be a JSON object", "[1]"],
  },
  {
    name: "submit: props a string",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x", props: "a=1" },
    status: 400,
    mentions: ["props must be a JSON object"],
  },
  {
    name: "submit: empty handler",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x", handler: "" },
    status: 400,
    mentions: ["handler must be a non-empty string"],
  },
  {
    name: "submit: body an array",
    method: "POST",
    path: "/api/tasks",
    body: [{ id: "keep:x" }],
    status: 400,
    mentions: ["expected a JSON object", "got an array"],
  },
  {
    name: "submit: body not JSON",
    method: "POST",
    path: "/api/tasks",
    body: "{id: keep}",
    status: 400,
    mentions: ["not valid JSON"],
  },
  {
    name: "submit: empty body",
    method: "POST",
    path: "/api/tasks",
    body: "",
    status: 400,
    mentions: ["expected a JSON body, got an empty one"],
  },
  {
    name: "submit: form content type",
    method: "POST",
    path: "/api/tasks",
    body: "id=keep:x",
    contentType: "application/x-www-form-urlencoded",
    status: 415,
    mentions: ["application/json"],
  },
  {
    name: "submit: existing id",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:1" },
    status: 409,
    mentions: ['"keep:1" already exists'],
  },
  {
    name: "submit: no token",
    method: "POST",
    path: "/api/tasks",
    body: { id: "keep:x" },
    auth: false,
    status: 401,
    mentions: ["token"],
  },
  {
    name: "task command: unknown command",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: { command: "explode" },
    status: 400,
    mentions: ["command must be one of pause, resume, sleep, kill", '"explode"'],
  },
  {
    name: "task command: missing command",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: {},
    status: 400,
    mentions: ["command", "is missing", "expected one of pause, resume, sleep, kill"],
  },
  {
    name: "task command: command and message disagree",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: { command: "pause", message: "kill" },
    status: 400,
    mentions: ['"command" or its older name "message", not both'],
  },
  {
    name: "task command: misspelt until",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: { command: "sleep", untill: "1m" },
    status: 400,
    mentions: ['unknown field "untill"', 'did you mean "until"'],
  },
  {
    name: "task command: sleep without until",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: { command: "sleep" },
    status: 400,
    mentions: ["until is missing", "RFC 3339"],
  },
  {
    name: "task command: until on pause",
    method: "POST",
    path: "/api/tasks/sm:1/commands",
    body: { command: "pause", until: "1m" },
    status: 400,
    mentions: ['until is only allowed with command "sleep"'],
  },
  {
    name: "task command: unknown task",
    method: "POST",
    path: "/api/tasks/nope:1/commands",
    body: { command: "pause" },
    status: 404,
    mentions: ['"nope:1" not found'],
  },
  {
    name: "task command: id with '/' in the path",
    method: "POST",
    path: "/api/tasks/a%2Fb/commands",
    body: { command: "pause" },
    status: 400,
    mentions: ["must not contain '/'"],
  },
  {
    name: "node command: stop_task without a task",
    method: "POST",
    path: "/api/nodes/bad-input-node/commands",
    body: { command: "stop_task" },
    status: 400,
    mentions: ["parameters.task (the task to stop)", "must be a non-empty string"],
  },
  {
    name: "node command: misspelt command field",
    method: "POST",
    path: "/api/nodes/bad-input-node/commands",
    body: { comand: "freeze" },
    status: 400,
    mentions: ['unknown field "comand"', 'did you mean "command"', "allowed: command, message, parameters"],
  },
  {
    name: "node command: missing command",
    method: "POST",
    path: "/api/nodes/bad-input-node/commands",
    body: {},
    status: 400,
    mentions: ["command is missing", "stop_task (or stop-task)"],
  },
  {
    name: "node command: unknown node",
    method: "POST",
    path: "/api/nodes/ghost/commands",
    body: { command: "freeze" },
    status: 404,
    mentions: ['"ghost" is not live', "bad-input-node"],
  },
  {
    name: "node command: parameters an array",
    method: "POST",
    path: "/api/nodes/bad-input-node/commands",
    body: { command: "balance", parameters: [1] },
    status: 400,
    mentions: ["parameters must be a JSON object"],
  },
  {
    name: "delete: unknown task",
    method: "DELETE",
    path: "/api/tasks/nope:1",
    status: 404,
    mentions: ['"nope:1" not found'],
  },
  {
    name: "state reset: running task",
    method: "DELETE",
    path: "/api/tasks/sm:1/state",
    status: 409,
    mentions: ["running on node bad-input-node", "Pause or kill it"],
  },
  {
    name: "state reset: no token",
    method: "DELETE",
    path: "/api/tasks/sm:1/state",
    auth: false,
    status: 401,
    mentions: ["token"],
  },
];

let ws: Workspace;
let binary: string;
let base: string;
let env: Record<string, string>;
let node: ReturnType<typeof startNode>;

async function call(
  c: Pick<HttpCase, "method" | "path" | "body" | "contentType" | "auth">,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (c.auth !== false) headers.authorization = `Bearer ${TOKEN}`;
  if (c.body !== undefined) headers["content-type"] = c.contentType ?? "application/json";
  const body = c.body === undefined ? undefined : typeof c.body === "string" ? c.body : JSON.stringify(c.body);
  const res = await fetch(base + c.path, { method: c.method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** The sentinel tasks and the stateful one's state: what no bad request may change. */
async function sentinel(): Promise<string> {
  const { json } = await call({ method: "GET", path: "/api/tasks" });
  const rows = (json.tasks as Array<{ id: string }>).filter((t) => t.id === "keep:1" || t.id === "sm:1");
  const state = (await call({ method: "GET", path: "/api/tasks/sm:1/state" })).json;
  return JSON.stringify({ rows, state: (state as { state?: unknown }).state });
}

let baseline: string;

beforeAll(async () => {
  binary = await metaforaBinary();
  ws = makeWorkspace(HANDLERS);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = {
    METAFORA_HTTP: `127.0.0.1:${port}`,
    METAFORA_TOKEN: TOKEN,
    METAFORA_NODE: "bad-input-node",
    METAFORA_DATA_DIR: `${ws.dir}/data`,
  };
  node = startNode(binary, { cwd: ws.dir, env });
  await node.waitReady(base, 30_000);
  expect((await call({ method: "POST", path: "/api/tasks", body: { id: "keep:1", props: { size: 1 } } })).status).toBe(
    201,
  );
  expect((await call({ method: "POST", path: "/api/tasks", body: { id: "sm:1" } })).status).toBe(201);
  await waitFor(
    "both sentinels running with a state",
    async () => {
      const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{
        id: string;
        owner?: string;
      }>;
      const state = (await call({ method: "GET", path: "/api/tasks/sm:1/state" })).json as { state?: { code: string } };
      return rows.filter((r) => r.owner).length === 2 && state.state?.code === "runnable";
    },
    { timeout: 20_000 },
  );
  baseline = await sentinel();
}, 120_000);

afterAll(async () => {
  await node?.stop();
  ws?.remove();
});

describe("HTTP API bad input", () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const { status, json } = await call(c);
      expect(status, `${c.name}: ${JSON.stringify(json)}`).toBe(c.status);
      expectMentions(String(json.error), c.mentions, c.name);
      expect(await sentinel()).toBe(baseline);
    });
  }
});

describe("operator answers that used to mislead", () => {
  test("a submit for a handler no node has is stored and answered with a warning (HTTP and CLI); the row says why it waits", async () => {
    const http = await call({ method: "POST", path: "/api/tasks", body: { id: "nohandler:1" } });
    expect(http.status).toBe(201);
    expectMentions(
      String(http.json.warning),
      ['no live node has handler "nohandler"', "keep", "handlers/nohandler.ts"],
      "http warning",
    );
    const cli = await runCli(binary, ["submit", "nohandler:2"], { cwd: ws.dir, env });
    expect(cli.code).toBe(0);
    expect(cli.stderr).toContain('warning: no live node has handler "nohandler"');
    const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{
      id: string;
      waiting?: string;
    }>;
    expect(rows.find((r) => r.id === "nohandler:1")?.waiting).toContain('no live node has handler "nohandler"');
    const table = await runCli(binary, ["tasks"], { cwd: ws.dir, env });
    expect(table.stdout).toContain('nohandler:1: waiting: no live node has handler "nohandler"');
    for (const id of ["nohandler:1", "nohandler:2"])
      expect((await call({ method: "DELETE", path: `/api/tasks/${id}` })).status).toBe(200);
    expect(await sentinel()).toBe(baseline);
  });

  test("resubmitting a finished stateful task is refused naming state reset; after the reset it runs again", async () => {
    expect((await call({ method: "POST", path: "/api/tasks", body: { id: "fin:1" } })).status).toBe(201);
    await waitFor("fin:1 completed and gone", async () => {
      const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{ id: string }>;
      const state = (await call({ method: "GET", path: "/api/tasks/fin:1/state" })).json as {
        state?: { code: string };
      };
      return !rows.some((r) => r.id === "fin:1") && state.state?.code === "completed";
    });
    const again = await call({ method: "POST", path: "/api/tasks", body: { id: "fin:1" } });
    expect(again.status).toBe(409);
    expectMentions(
      String(again.json.error),
      ["already ran to the end", "completed", "metafora state reset fin:1"],
      "resubmit",
    );
    const cli = await runCli(binary, ["submit", "fin:1"], { cwd: ws.dir, env });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("metafora state reset fin:1");
    // Nothing was stored by the refused submits.
    const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{ id: string }>;
    expect(rows.some((r) => r.id === "fin:1")).toBe(false);
    const reset = await runCli(binary, ["state", "reset", "fin:1"], { cwd: ws.dir, env });
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain("reset the state of task fin:1");
    expect((await call({ method: "DELETE", path: "/api/tasks/fin:1/state" })).json).toEqual({
      id: "fin:1",
      reset: false,
    });
    expect((await call({ method: "POST", path: "/api/tasks", body: { id: "fin:1" } })).status).toBe(201);
    await waitFor("fin:1 ran again to completion", async () => {
      const state = (await call({ method: "GET", path: "/api/tasks/fin:1/state" })).json as {
        state?: { code: string };
      };
      const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{ id: string }>;
      return state.state?.code === "completed" && !rows.some((r) => r.id === "fin:1");
    });
    expect(await sentinel()).toBe(baseline);
  });

  test("task and node commands: 'command' and the older 'message' both work; stop-task and stop_task both work", async () => {
    const viaMessage = await call({ method: "POST", path: "/api/tasks/sm:1/commands", body: { message: "pause" } });
    expect(viaMessage.status).toBe(202);
    await waitFor(
      "sm:1 paused",
      async () =>
        ((await call({ method: "GET", path: "/api/tasks/sm:1/state" })).json as { state?: { code: string } }).state
          ?.code === "paused",
    );
    const viaCommand = await call({ method: "POST", path: "/api/tasks/sm:1/commands", body: { command: "resume" } });
    expect(viaCommand.status).toBe(202);
    expect(viaCommand.json).toMatchObject({ id: "sm:1", command: "resume", message: "resume" });
    await waitFor(
      "sm:1 runnable again",
      async () =>
        ((await call({ method: "GET", path: "/api/tasks/sm:1/state" })).json as { state?: { code: string } }).state
          ?.code === "runnable",
    );
    for (const name of ["stop-task", "stop_task"]) {
      const r = await call({
        method: "POST",
        path: "/api/nodes/bad-input-node/commands",
        body: { command: name, parameters: { task: "keep:1" } },
      });
      expect(r.status, name).toBe(202);
      expect(r.json).toMatchObject({ command: "stop_task", parameters: { task: "keep:1" } });
    }
    const old = await call({
      method: "POST",
      path: "/api/nodes/bad-input-node/commands",
      body: { message: "balance" },
    });
    expect(old.status).toBe(202);
    await waitFor("keep:1 claimed again", async () =>
      ((await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{ id: string; owner?: string }>).some(
        (t) => t.id === "keep:1" && t.owner,
      ),
    );
    baseline = await sentinel();
  });

  test('a handler that returns "release" at once is paced: a handful of claims, a back-off metric, a waiting reason, one warning', async () => {
    expect((await call({ method: "POST", path: "/api/tasks", body: { id: "bounce:1" } })).status).toBe(201);
    const row = await waitFor("bounce:1 backing off", async () => {
      const rows = (await call({ method: "GET", path: "/api/tasks" })).json.tasks as Array<{
        id: string;
        waiting?: string;
      }>;
      return rows.find((r) => r.id === "bounce:1" && r.waiting?.startsWith("backing off until"));
    });
    expect(row.waiting).toContain("on node bad-input-node");
    await new Promise((r) => setTimeout(r, 1500));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).not.toMatch(/\n\n/);
    const claims = Number(/metafora_claims_won_total\{[^}]*handler="bounce"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? "NaN");
    const backoffs = Number(
      /metafora_release_backoffs_total\{[^}]*handler="bounce"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? "NaN",
    );
    // Unpaced, this is hundreds of thousands of claims in the same time.
    expect(claims).toBeGreaterThanOrEqual(1);
    expect(claims).toBeLessThanOrEqual(5);
    expect(backoffs).toBe(claims);
    const warnings = node
      .output()
      .split("\n")
      .filter((l) => l.includes("bounce:1") && l.includes('"level":"warn"'));
    expect(warnings.length).toBe(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ node: "bad-input-node" });
    expect((await call({ method: "DELETE", path: "/api/tasks/bounce:1" })).status).toBe(200);
    expect(await sentinel()).toBe(baseline);
  });

  test("a second node on the same data dir is refused (exit 78) and the running node carries on", async () => {
    const port = await freePort();
    const second = await runCli(binary, ["run"], {
      cwd: ws.dir,
      env: { ...env, METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "second" },
      timeout: 30_000,
    });
    expect(second.code).toBe(78);
    expect(second.stdout + second.stderr).toContain(`${ws.dir}/data`);
    expect(await sentinel()).toBe(baseline);
  });

  test("JSON log lines name task, node and handler as fields", () => {
    const line = node
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.task === "sm:1");
    expect(line).toMatchObject({ node: "bad-input-node", task: "sm:1", handler: "sm" });
    expect(String(line!.msg)).not.toContain("[task sm:1]");
  });
});
