/**
 * Operator CLI (src/runtime/cli/operator-commands.ts), in process: cac parsing, output (tables and
 * --json), exit codes. Embedded mode goes through a real node's HTTP API (ops-fixture.ts);
 * etcd mode talks to a real etcd (startEtcd()). The compiled-binary end-to-end tests are in
 * cli.ts; one test here goes through createCli to check the wiring.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cac } from "cac";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Consumer } from "../../src/consumer/consumer.ts";
import { EtcdCoordinator } from "../../src/coordinators/etcd/coordinator.ts";
import { EtcdStateStore } from "../../src/coordinators/etcd/state-store.ts";
import { silentLogger } from "../../src/log.ts";
import { createCli } from "../../src/runtime/cli/cli.ts";
import { loadConfig } from "../../src/runtime/config/load.ts";
import type { RuntimeConfig } from "../../src/runtime/config/schema.ts";
import { renderTable } from "../../src/runtime/cli/output.ts";
import { registerOperatorCommands } from "../../src/runtime/cli/operator-commands.ts";
import { decodeMessage } from "../../src/statemachine/codec.ts";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import { blockingHandler, startOpsNode, type OpsNode } from "./ops-fixture.ts";

const cwd = mkdtempSync(join(tmpdir(), "metafora-opcli-")); // no config file here: env only
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run one operator command with a config built from `env` (as the config loader would). */
async function runCli(args: string[], env: Record<string, string>, now = () => Date.now()): Promise<Run> {
  let out = "";
  let err = "";
  let code = -1;
  const cli = cac("metafora");
  registerOperatorCommands(cli, {
    loadConfig: (): Promise<RuntimeConfig> => loadConfig({ env, cwd, isTTY: false }),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    setExitCode: (c) => (code = c),
    now,
  });
  cli.parse(["bun", "metafora", ...args], { run: false });
  await cli.runMatchedCommand();
  return { code, out, err };
}

describe("operator CLI against an embedded node (HTTP API)", () => {
  let node: OpsNode;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);

  beforeAll(async () => {
    node = await startOpsNode({ token: "tok-123" });
    env = { METAFORA_HTTP: `127.0.0.1:${node.server.address.port}`, METAFORA_TOKEN: "tok-123" };
  });
  afterAll(async () => {
    await node.close();
  });

  test("submit, then tasks shows it as a table and as JSON", async () => {
    const sub = await cli("submit", "work:a", "--props", '{"url":"https://example.com","n":1}');
    expect(sub).toMatchObject({ code: 0, err: "" });
    expect(sub.out).toBe("submitted task work:a (handler work)\n");
    await waitFor("work:a running", () => node.consumer.tasks().some((t) => t.task.id === "work:a"));

    const table = await cli("tasks");
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^ID\s+OWNER\s+TOKEN\s+HANDLER\s+STATE\s+ATTEMPTS\/ERRORS\s+LAST ERROR\s+NEXT RETRY\s+PROPS$/,
    );
    const row = lines.find((l) => l.startsWith("work:a"));
    expect(row).toMatch(
      /^work:a\s+node-1\s+\d+\s+work\s+running\s+1\/0\s+-\s+-\s+\{"url":"https:\/\/example.com","n":1\}$/,
    );

    const json = await cli("tasks", "--json");
    const tasks = JSON.parse(json.out);
    expect(tasks.find((t: { id: string }) => t.id === "work:a")).toMatchObject({
      id: "work:a",
      owner: "node-1",
      props: { url: "https://example.com", n: 1 },
    });
  });

  test("task <id> shows the row and its history; tasks shows attempts/errors, last error and next retry", async () => {
    expect((await cli("submit", "fails:x")).code).toBe(0);
    const detail = await waitFor("fails:x failed once and waits for its retry", async () => {
      const d = JSON.parse((await cli("task", "fails:x", "--json")).out);
      return d.task.errors >= 1 && d.task.nextRetry && !d.task.owner ? d : undefined;
    });
    expect(detail.task).toMatchObject({ id: "fails:x", handler: "fails" });
    expect(detail.task.attempts).toBeGreaterThanOrEqual(1);
    expect(detail.task.lastError.message).toBe("boom: the downstream service said no");
    expect(Date.parse(detail.task.nextRetry)).toBeGreaterThan(Date.parse(detail.task.lastError.at));
    const kinds = detail.history.map((e: { kind: string }) => e.kind);
    expect(kinds.slice(0, 3)).toEqual(["claimed", "error", "released"]);
    expect(detail.history[0]).toMatchObject({ node: "node-1" });
    expect(detail.history[0].token).toBeGreaterThan(0);
    expect(detail.historyNote).toContain("in memory by node");

    const row = (await cli("tasks")).out.split("\n").find((l) => l.startsWith("fails:x"));
    expect(row).toMatch(
      /^fails:x\s+-\s+-\s+fails\s+pending\s+\d+\/\d+\s+boom: the downstream service said no\s+\d{4}-\d\d-\d\dT/,
    );
    const text = (await cli("task", "fails:x")).out;
    expect(text).toMatch(/^FIELD\s+VALUE\ntask\s+fails:x\nhandler\s+fails\n/);
    expect(text).toMatch(/AT\s+EVENT\s+NODE\s+TOKEN\s+DETAIL\n\S+\s+claimed\s+node-1\s+\d+/);
    expect(text).toContain("handler error");

    const api = await fetch(`http://127.0.0.1:${node.server.address.port}/api/tasks/fails:x`);
    expect(api.status).toBe(200);
    expect(((await api.json()) as { task: { id: string } }).task.id).toBe("fails:x");
    const missing = await cli("task", "nope:1");
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('task "nope:1" not found');
    expect((await cli("delete", "fails:x")).code).toBe(0);
  });

  test("values that look like numbers arrive exactly as typed (ids, --handler, --task)", async () => {
    const sub = await cli("submit", "007", "--handler", "work", "--json");
    expect(sub.code).toBe(0);
    expect(JSON.parse(sub.out)).toEqual({ id: "007", props: { handler: "work" }, handler: "work" });
    await waitFor("007 running", () => node.consumer.tasks().some((t) => t.task.id === "007"));
    const stop = await cli("command", "node-1", "stop-task", "--task", "007", "--json");
    expect(stop.code).toBe(0);
    expect(JSON.parse(stop.out)).toEqual({ node: "node-1", command: "stop_task", parameters: { task: "007" } });
    expect((await cli("delete", "007")).code).toBe(0);
    // After a boolean flag, mri would turn "0042" into 42.
    const afterFlag = await cli("submit", "--json", "0042", "--handler", "work");
    expect(afterFlag.code).toBe(0);
    expect(JSON.parse(afterFlag.out).id).toBe("0042");
    expect((await cli("delete", "--json", "0042")).code).toBe(0);
  });

  test("a duplicate submit fails with exit 1 and says why; bad --props is a usage error (exit 2) and submits nothing", async () => {
    const dup = await cli("submit", "work:a");
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('task "work:a" already exists');
    const bad = await cli("submit", "work:bad", "--props", "{nope");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--props must be a JSON object");
    const arr = await cli("submit", "work:bad", "--props", "[1]");
    expect(arr.code).toBe(2);
    expect(arr.err).toContain("--props must be a JSON object");
    expect((await node.services.client.tasks()).some((t) => t.id === "work:bad")).toBe(false);
    const slash = await cli("submit", "a/b");
    expect(slash.code).toBe(2);
  });

  test("--json errors are JSON on stderr", async () => {
    const dup = await cli("submit", "work:a", "--json");
    expect(dup.code).toBe(1);
    expect(dup.out).toBe("");
    expect(JSON.parse(dup.err)).toEqual({ error: 'task "work:a" already exists' });
  });

  test("nodes lists live nodes with their task counts", async () => {
    const res = await cli("nodes");
    expect(res.code).toBe(0);
    expect(res.out).toMatch(/^NODE\s+TASKS\nnode-1\s+\d+\n$/);
    const json = JSON.parse((await cli("nodes", "--json")).out);
    expect(json).toEqual([{ name: "node-1", tasks: node.consumer.tasks().length }]);
  });

  test("command: freeze and unfreeze reach the node; bad commands are usage errors; unknown nodes fail", async () => {
    expect((await cli("command", "node-1", "freeze")).out).toBe("sent freeze to node node-1\n");
    await waitFor("frozen", () => node.consumer.frozen());
    expect((await cli("command", "node-1", "unfreeze")).code).toBe(0);
    await waitFor("unfrozen", () => !node.consumer.frozen());
    const noTask = await cli("command", "node-1", "stop-task");
    expect(noTask.code).toBe(2);
    expect(noTask.err).toContain("stop-task needs --task");
    const unknown = await cli("command", "node-1", "explode");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("freeze, unfreeze, balance, stop-task");
    const stray = await cli("command", "node-1", "freeze", "--task", "x");
    expect(stray.code).toBe(2);
    const ghost = await cli("command", "ghost", "balance");
    expect(ghost.code).toBe(1);
    expect(ghost.err).toContain('node "ghost" is not live');
  });

  test("pause, state, resume, sleep (duration and RFC 3339), kill on a stateful task", async () => {
    expect((await cli("submit", "sm:x")).code).toBe(0);
    await waitFor("sm:x runnable", () => node.services.stateOf?.("sm:x")?.state.code === "runnable");
    expect((await cli("pause", "sm:x")).out).toBe("sent pause to task sm:x\n");
    await waitFor(
      "paused",
      async () => JSON.parse((await cli("state", "sm:x", "--json")).out).state?.code === "paused",
    );
    const shown = await cli("state", "sm:x");
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/^FIELD\s+VALUE\ntask\s+sm:x\nstate\s+paused\nsince\s+\d{4}-\d\d-\d\dT/);

    expect((await cli("resume", "sm:x")).code).toBe(0);
    await waitFor(
      "runnable",
      async () => JSON.parse((await cli("state", "sm:x", "--json")).out).state?.code === "runnable",
    );

    const fixed = 1_900_000_000_000;
    const slept = await runCli(["sleep", "sm:x", "1h30m", "--json"], env, () => fixed);
    expect(slept.code).toBe(0);
    expect(JSON.parse(slept.out)).toEqual({
      id: "sm:x",
      message: "sleep",
      until: new Date(fixed + 90 * 60_000).toISOString(),
    });
    await waitFor(
      "sleeping",
      async () => JSON.parse((await cli("state", "sm:x", "--json")).out).state?.code === "sleeping",
    );
    expect((await cli("state", "sm:x")).out).toContain(`sleeping until ${new Date(fixed + 90 * 60_000).toISOString()}`);
    // The row shows the state and its wake-up as the next try; the history has each change.
    const detail = JSON.parse((await cli("task", "sm:x", "--json")).out);
    expect(detail.task.state).toEqual({ code: "sleeping", until: new Date(fixed + 90 * 60_000).toISOString() });
    expect(detail.task.nextRetry).toBe(new Date(fixed + 90 * 60_000).toISOString());
    const states = detail.history
      .filter((e: { kind: string }) => e.kind === "state")
      .map((e: { reason: string }) => e.reason);
    expect(states).toEqual(["paused", "runnable", "sleeping"]);

    const rfc = await cli("sleep", "sm:x", "2031-05-06T07:08:09Z");
    expect(rfc.out).toBe("sent sleep until 2031-05-06T07:08:09.000Z to task sm:x\n");

    const badWhen = await cli("sleep", "sm:x", "tomorrow");
    expect(badWhen.code).toBe(2);
    expect(badWhen.err).toContain("RFC 3339");

    expect((await cli("kill", "sm:x")).code).toBe(0);
    await waitFor(
      "killed",
      async () => JSON.parse((await cli("state", "sm:x", "--json")).out).state?.code === "killed",
    );
  });

  test("state of a plain task and of an unknown one; delete, then delete again fails", async () => {
    const plain = await cli("state", "work:a");
    expect(plain.code).toBe(0);
    expect(plain.out).toContain("has no state");
    const unknown = await cli("state", "work:ghost");
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('task "work:ghost" not found');
    expect((await cli("delete", "work:a")).out).toBe("deleted task work:a\n");
    const again = await cli("delete", "work:a");
    expect(again.code).toBe(1);
    expect(again.err).toContain("not found");
  });

  test("a wrong token fails with exit 1 and a hint; no token is refused too", async () => {
    const wrong = await runCli(["submit", "work:t"], { ...env, METAFORA_TOKEN: "wrong" });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("does not match");
    expect(wrong.err).toContain("METAFORA_TOKEN");
    const none = await runCli(["delete", "work:t"], { METAFORA_HTTP: env.METAFORA_HTTP! });
    expect(none.code).toBe(1);
    expect(none.err).toContain("Authorization: Bearer");
    // Reads need no token.
    expect((await runCli(["tasks"], { METAFORA_HTTP: env.METAFORA_HTTP! })).code).toBe(0);
  });
});

describe("operator CLI: unreachable and misconfigured targets", () => {
  test("no node listening at http.listen → exit 69 naming the address", async () => {
    const port = await freePort();
    const res = await runCli(["tasks"], { METAFORA_HTTP: `127.0.0.1:${port}` });
    expect(res.code).toBe(69);
    expect(res.err).toContain(`http://127.0.0.1:${port}`);
    expect(res.err).toContain("unreachable");
  });

  test('embedded mode with http.listen "off" → exit 78', async () => {
    const res = await runCli(["tasks"], { METAFORA_HTTP: "off" });
    expect(res.code).toBe(78);
    expect(res.err).toContain('http.listen is "off"');
  });

  test("an invalid config → exit 78 with the loader's message", async () => {
    const res = await runCli(["tasks"], { METAFORA_HTTP: "nonsense" });
    expect(res.code).toBe(78);
    expect(res.err).toContain("METAFORA_HTTP");
  });

  test("etcd mode with nothing listening → exit 69", async () => {
    const port = await freePort();
    const res = await runCli(["tasks"], {
      METAFORA_ETCD_ENDPOINTS: `127.0.0.1:${port}`,
      METAFORA_ETCD_DIAL_TIMEOUT: "1s",
      METAFORA_ETCD_REQUEST_TIMEOUT: "1s",
    });
    expect(res.code).toBe(69);
    expect(res.err).toContain(`127.0.0.1:${port}`);
    expect(res.err).toContain("unreachable");
  }, 20_000);
});

describe("operator CLI against etcd (direct)", () => {
  let etcd: EtcdServer;
  let env: Record<string, string>;
  let consumer: Consumer | undefined;
  const ns = `/opcli-${process.pid}`;
  const cli = (...args: string[]) => runCli(args, env);

  beforeAll(async () => {
    etcd = await startEtcd();
    env = { METAFORA_ETCD_ENDPOINTS: etcd.endpoint, METAFORA_NAMESPACE: ns, METAFORA_NODE: "operator" };
  }, 30_000);
  afterAll(async () => {
    await consumer?.shutdown({ timeout: 2000 });
    await etcd?.stop();
  });

  test("submit, tasks, delete with no node running", async () => {
    expect((await cli("submit", "work:e1", "--props", '{"a":1}')).code).toBe(0);
    const dup = await cli("submit", "work:e1");
    expect(dup.code).toBe(1);
    expect(dup.err).toContain("already exists");
    const tasks = JSON.parse((await cli("tasks", "--json")).out);
    // No node is live, so the row says why the task waits.
    expect(tasks).toEqual([
      {
        id: "work:e1",
        props: { a: 1 },
        handler: "work",
        waiting: 'no live node; it waits until a node with handler "work" joins',
      },
    ]);
    expect((await cli("nodes")).out).toBe("no live nodes\n");
    expect((await cli("delete", "work:e1")).code).toBe(0);
    expect((await cli("delete", "work:e1")).code).toBe(1);
    expect((await cli("tasks")).out).toBe("no tasks\n");
  });

  test("a live node: nodes shows it, tasks shows owner and token, a freeze command reaches it", async () => {
    const coordinator = new EtcdCoordinator(
      { endpoints: [etcd.endpoint], namespace: ns, node: "worker-1", leaseTtl: 5 },
      { log: silentLogger },
    );
    consumer = new Consumer({
      coordinator,
      node: "worker-1",
      handlers: { work: blockingHandler },
      log: silentLogger,
      balanceEvery: Infinity,
    });
    await consumer.start();
    expect((await cli("submit", "work:e2")).code).toBe(0);
    await waitFor("work:e2 running on worker-1", () => consumer!.tasks().some((t) => t.task.id === "work:e2"));
    expect(JSON.parse((await cli("nodes", "--json")).out)).toEqual([{ name: "worker-1", tasks: 1 }]);
    const [info] = JSON.parse((await cli("tasks", "--json")).out);
    expect(info).toMatchObject({ id: "work:e2", owner: "worker-1" });
    expect(info.token).toBe(consumer.tasks()[0]!.token);
    expect((await cli("command", "worker-1", "freeze")).code).toBe(0);
    await waitFor("worker-1 frozen", () => consumer!.frozen());
    expect((await cli("command", "worker-1", "unfreeze")).code).toBe(0);
    await waitFor("worker-1 unfrozen", () => !consumer!.frozen());
  }, 30_000);

  test("task commands are written to the task's command slot; state reads state/T without creating it", async () => {
    expect((await cli("submit", "sm:e3")).code).toBe(0);
    expect((await cli("pause", "sm:e3")).code).toBe(0);
    const client = etcd.client();
    const slot = await client.get(`${ns}/tasks/sm:e3/commands`).string();
    expect(slot).not.toBeNull();
    expect(decodeMessage(slot!)).toEqual({ code: "pause" });

    const none = await cli("state", "sm:e3", "--json");
    expect(JSON.parse(none.out)).toEqual({ id: "sm:e3" });
    expect(await client.get(`${ns}/state/sm:e3`).string()).toBeNull(); // nothing recorded by reading
    await new EtcdStateStore(client, ns).store("sm:e3", {
      code: "fault",
      errors: [{ timestamp: new Date("2030-01-01T00:00:00Z"), error: "boom" }],
    });
    const shown = await cli("state", "sm:e3");
    expect(shown.out).toContain("fault (1 error)");
    expect(shown.out).toMatch(/ERROR AT\s+ERROR\n2030-01-01T00:00:00.000Z\s+boom\n/);
    // The enriched row from etcd: the state from state/T; no history (etcd keeps none).
    const detail = JSON.parse((await cli("task", "sm:e3", "--json")).out);
    expect(detail).toMatchObject({
      task: { id: "sm:e3", handler: "sm", state: { code: "fault", errors: 1 } },
      history: [],
    });
    expect(detail.historyNote).toContain("etcd keeps no task history");
    expect((await cli("tasks")).out).toMatch(/\nsm:e3\s+-\s+-\s+sm\s+fault \(1 error\)\s+-/);
    expect((await cli("pause", "sm:nope")).code).toBe(1);
  });
});

describe("wiring through createCli", () => {
  let node: OpsNode;
  beforeAll(async () => {
    node = await startOpsNode();
  });
  afterAll(async () => {
    await node.close();
  });

  test("operator commands run with config from env and return their exit codes; help lists them", async () => {
    let out = "";
    let err = "";
    const io = (args: string[]) => ({
      args,
      env: { METAFORA_HTTP: `127.0.0.1:${node.server.address.port}` },
      cwd,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      isTTY: false,
    });
    expect(await createCli(io(["submit", "work:w", "--json"])).run()).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ id: "work:w" });
    out = "";
    expect(await createCli(io(["delete", "work:nope"])).run()).toBe(1);
    expect(err).toContain("not found");
    expect(await createCli(io(["submit"])).run()).toBe(2); // missing <id>: cac usage error
  });

  test("every operator command is registered with help text and --json", () => {
    const cli = cac("metafora");
    registerOperatorCommands(cli, { loadConfig: () => Promise.reject(new Error("not used")) });
    const names = cli.commands.map((c) => c.name);
    expect(names).toEqual([
      "submit",
      "delete",
      "tasks",
      "task",
      "nodes",
      "command",
      "pause",
      "resume",
      "kill",
      "sleep",
      "state",
    ]);
    for (const c of cli.commands) {
      expect(c.description.length).toBeGreaterThan(20);
      expect(c.options.some((o) => o.name === "json")).toBe(true);
    }
  });
});

describe("renderTable", () => {
  test("pads columns, keeps rows on one line", () => {
    expect(
      renderTable(
        ["A", "BB"],
        [
          ["xyz", "1"],
          ["q", "line\nbreak"],
        ],
      ),
    ).toBe("A    BB\nxyz  1\nq    line\\nbreak\n");
  });
});
