/**
 * The node's HTTP server (src/runtime/http/): probes, metrics, info and the JSON API, served by
 * a real server on 127.0.0.1:0 in front of a real Consumer on a MemoryBroker (ops-fixture.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import { authorizeChange, isLoopbackAddress, tokenMatches } from "../../src/runtime/http/auth.ts";
import { HttpError } from "../../src/runtime/http/json.ts";
import { parseListen, startHttpServer } from "../../src/runtime/http/server.ts";
import { parsePrometheusText, sampleValue } from "../support/prometheus.ts";
import { waitFor } from "../support/wait.ts";
import { startOpsNode, type OpsNode } from "./ops-fixture.ts";

interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON under test
  text: string;
}

async function call(
  base: string,
  method: string,
  path: string,
  opts: { json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["content-type"] ??= "application/json";
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

describe("HTTP server on an open loopback node (no token)", () => {
  let node: OpsNode;
  let base: string;
  const api = (method: string, path: string, opts?: Parameters<typeof call>[3]) => call(base, method, path, opts);

  beforeAll(async () => {
    node = await startOpsNode({ start: false });
    base = node.server.url;
  });
  afterAll(async () => {
    await node.close();
  });

  test("binds loopback on a free port and reports its URL", () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(node.server.address.port).toBeGreaterThan(0);
  });

  test("/healthz answers while /readyz is 503 until the node is ready, then 200", async () => {
    expect((await api("GET", "/healthz")).status).toBe(200);
    const notReady = await api("GET", "/readyz");
    expect(notReady.status).toBe(503);
    expect(notReady.body.error).toContain("not ready");
    await node.consumer.start();
    node.ready = true;
    const ready = await api("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: "ready" });
    const head = await fetch(`${base}/healthz`, { method: "HEAD" });
    expect(head.status).toBe(200);
  });

  test("task lifecycle through the JSON API: submit (201), duplicate (409), list, delete (200), delete again (404)", async () => {
    const created = await api("POST", "/api/tasks", { json: { id: "work:1", props: { n: 1 } } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: "work:1", props: { n: 1 } });
    const dup = await api("POST", "/api/tasks", { json: { id: "work:1" } });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toContain("work:1");
    await waitFor("work:1 running", () => node.consumer.tasks().some((t) => t.task.id === "work:1"));
    const list = await api("GET", "/api/tasks");
    expect(list.status).toBe(200);
    const entry = list.body.tasks.find((t: { id: string }) => t.id === "work:1");
    expect(entry).toMatchObject({ id: "work:1", props: { n: 1 }, owner: "node-1" });
    expect(entry.token).toBeGreaterThan(0);

    const viaHandler = await api("POST", "/api/tasks", { json: { id: "job-7", handler: "work" } });
    expect(viaHandler.status).toBe(201);
    expect(viaHandler.body.props).toEqual({ handler: "work" });
    await waitFor("job-7 routed to work by props.handler", () =>
      node.consumer.tasks().some((t) => t.task.id === "job-7" && t.handler === "work"),
    );

    expect((await api("DELETE", "/api/tasks/work:1")).status).toBe(200);
    await waitFor("work:1 stopped", () => !node.consumer.tasks().some((t) => t.task.id === "work:1"));
    const again = await api("DELETE", "/api/tasks/work:1");
    expect(again.status).toBe(404);
    expect(again.body).toEqual({ error: 'task "work:1" not found' });
    expect((await api("DELETE", "/api/tasks/job-7")).status).toBe(200);
  });

  test("bad input gets 400/413/415 with a JSON error that says what was expected, and the node keeps serving", async () => {
    const badJson = await api("POST", "/api/tasks", {
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(badJson.status).toBe(400);
    expect(badJson.body.error).toContain("not valid JSON");

    const noType = await api("POST", "/api/tasks", { body: JSON.stringify({ id: "x" }) });
    expect(noType.status).toBe(415);
    expect(noType.body.error).toContain("application/json");

    const missingId = await api("POST", "/api/tasks", { json: { props: {} } });
    expect(missingId.status).toBe(400);
    expect(missingId.body.error).toContain("id must be a non-empty string");

    const slash = await api("POST", "/api/tasks", { json: { id: "a/b" } });
    expect(slash.status).toBe(400);
    expect(slash.body.error).toContain("'/'");

    const arrayProps = await api("POST", "/api/tasks", { json: { id: "p", props: [1] } });
    expect(arrayProps.status).toBe(400);
    expect(arrayProps.body.error).toContain("props must be a JSON object");

    const notObject = await api("POST", "/api/tasks", { json: [1, 2] });
    expect(notObject.status).toBe(400);
    expect(notObject.body.error).toContain('{"id"');

    const huge = await api("POST", "/api/tasks", {
      json: { id: "big", props: { blob: "x".repeat(1024 * 1024 + 10) } },
    });
    expect(huge.status).toBe(413);

    const badEscape = await api("GET", "/api/tasks/%E0%A4%A/state");
    expect(badEscape.status).toBe(400);

    // Garbage on the socket: answered with 400 (or dropped), never a crash.
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(node.server.address.port, "127.0.0.1", () => sock.write("THIS IS NOT HTTP\r\n\r\n"));
      let got = "";
      sock.on("data", (d) => (got += d.toString()));
      sock.on("end", () => resolve(got));
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
    });
    expect(reply === "" || reply.startsWith("HTTP/1.1 400")).toBe(true);
    expect((await api("GET", "/healthz")).status).toBe(200);
  });

  test("unknown paths are 404 and wrong methods 405 with Allow, both as JSON", async () => {
    const missing = await api("GET", "/nope");
    expect(missing.status).toBe(404);
    expect(missing.body.error).toContain("/nope");
    const wrong = await api("PUT", "/api/tasks");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET, POST");
  });

  test("/metrics is Prometheus text that reflects the node", async () => {
    await api("POST", "/api/tasks", { json: { id: "work:m" } });
    await waitFor("work:m running", () => node.consumer.tasks().some((t) => t.task.id === "work:m"));
    const res = await api("GET", "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const samples = parsePrometheusText(res.text);
    expect(sampleValue(samples, "metafora_tasks_running", { handler: "work" })).toBe(1);
    expect(sampleValue(samples, "metafora_claims_won_total", { handler: "work" })).toBeGreaterThanOrEqual(1);
    await api("DELETE", "/api/tasks/work:m");
  });

  test("/info has Go's info shape plus token and handler; stateful tasks show state and modified", async () => {
    await api("POST", "/api/tasks", { json: { id: "work:info", props: { a: 1 } } });
    await api("POST", "/api/tasks", { json: { id: "sm:info" } });
    await waitFor("both running", () => node.consumer.tasks().filter((t) => t.task.id.endsWith(":info")).length === 2);
    await waitFor("sm:info has a state", () => node.services.stateOf?.("sm:info"));
    const info = (await api("GET", "/info")).body;
    expect(info.frozen).toBe(false);
    expect(info.name).toBe("node-1");
    expect(new Date(info.started).toISOString()).toBe(info.started);
    const plain = info.tasks.find((t: { id: string }) => t.id === "work:info");
    expect(plain).toMatchObject({ id: "work:info", task: { id: "work:info", props: { a: 1 } }, handler: "work" });
    expect(typeof plain.token).toBe("number");
    expect(new Date(plain.started).getTime()).toBeGreaterThan(0);
    expect(plain.state).toBeUndefined();
    expect(plain.stopped).toBeUndefined();
    const sm = info.tasks.find((t: { id: string }) => t.id === "sm:info");
    expect(sm).toMatchObject({ handler: "sm", state: "runnable" });
    expect(new Date(sm.modified).getTime()).toBeGreaterThan(0);
    await api("DELETE", "/api/tasks/work:info");
    await api("DELETE", "/api/tasks/sm:info");
  });

  test("nodes and node commands: list with task counts, freeze/unfreeze, stop_task; unknown node 404, bad command 400", async () => {
    await api("POST", "/api/tasks", { json: { id: "work:n" } });
    await waitFor("work:n running", () => node.consumer.tasks().some((t) => t.task.id === "work:n"));
    const nodes = await api("GET", "/api/nodes");
    expect(nodes.body.nodes).toEqual([{ name: "node-1", tasks: node.consumer.tasks().length }]);

    expect((await api("POST", "/api/nodes/node-1/commands", { json: { command: "freeze" } })).status).toBe(202);
    await waitFor("frozen", () => node.consumer.frozen());
    expect((await api("GET", "/info")).body.frozen).toBe(true);
    expect((await api("POST", "/api/nodes/node-1/commands", { json: { command: "unfreeze" } })).status).toBe(202);
    await waitFor("unfrozen", () => !node.consumer.frozen());

    const firstToken = (await api("GET", "/api/tasks")).body.tasks.find((t: { id: string }) => t.id === "work:n").token;
    const stop = await api("POST", "/api/nodes/node-1/commands", {
      json: { command: "stop_task", parameters: { task: "work:n" } },
    });
    expect(stop.status).toBe(202);
    expect(stop.body).toEqual({ node: "node-1", command: "stop_task", parameters: { task: "work:n" } });
    // Stopped (released) and, the node being unfrozen, claimed again with a new token.
    expect(firstToken).toBeGreaterThan(0);
    await waitFor("work:n re-claimed with a larger token", async () => {
      const t = (await api("GET", "/api/tasks")).body.tasks.find((x: { id: string }) => x.id === "work:n");
      return (
        t?.owner === "node-1" &&
        t.token > firstToken &&
        node.consumer.tasks().some((r) => r.task.id === "work:n" && r.token === t.token)
      );
    });

    const unknownNode = await api("POST", "/api/nodes/ghost/commands", { json: { command: "freeze" } });
    expect(unknownNode.status).toBe(404);
    expect(unknownNode.body.error).toContain("ghost");
    const badCommand = await api("POST", "/api/nodes/node-1/commands", { json: { command: "explode" } });
    expect(badCommand.status).toBe(400);
    expect(badCommand.body.error).toContain("freeze, unfreeze, balance, stop_task");
    const noTask = await api("POST", "/api/nodes/node-1/commands", { json: { command: "stop_task" } });
    expect(noTask.status).toBe(400);
    expect(noTask.body.error).toContain("parameters.task");
    await api("DELETE", "/api/tasks/work:n");
  });

  test("state-machine commands: pause, resume, sleep (duration), kill, and GET state at each step", async () => {
    await api("POST", "/api/tasks", { json: { id: "sm:1" } });
    await waitFor("sm:1 runnable", () => node.services.stateOf?.("sm:1")?.state.code === "runnable");
    const stateOf = async () => (await api("GET", "/api/tasks/sm:1/state")).body;

    expect((await api("POST", "/api/tasks/sm:1/commands", { json: { message: "pause" } })).status).toBe(202);
    await waitFor("paused", async () => (await stateOf()).state?.code === "paused");
    const paused = await stateOf();
    expect(paused.id).toBe("sm:1");
    expect(new Date(paused.since).getTime()).toBeGreaterThan(0);

    expect((await api("POST", "/api/tasks/sm:1/commands", { json: { message: "resume" } })).status).toBe(202);
    await waitFor("runnable again", async () => (await stateOf()).state?.code === "runnable");

    const before = Date.now();
    const sleep = await api("POST", "/api/tasks/sm:1/commands", { json: { message: "sleep", until: "10m" } });
    expect(sleep.status).toBe(202);
    const until = new Date(sleep.body.until).getTime();
    expect(until).toBeGreaterThanOrEqual(before + 10 * 60_000);
    expect(until).toBeLessThan(Date.now() + 10 * 60_000 + 1000);
    await waitFor("sleeping", async () => (await stateOf()).state?.code === "sleeping");
    expect(new Date((await stateOf()).state.until).getTime()).toBe(until);

    expect((await api("POST", "/api/tasks/sm:1/commands", { json: { message: "kill" } })).status).toBe(202);
    await waitFor(
      "killed (terminal: the task is done and gone)",
      async () => (await stateOf()).state?.code === "killed",
    );
    // The stored state outlives the task.
    await waitFor(
      "sm:1 deleted",
      async () => !(await api("GET", "/api/tasks")).body.tasks.some((t: { id: string }) => t.id === "sm:1"),
    );
    expect((await stateOf()).state.code).toBe("killed");
  });

  test("task commands and state: 404 for unknown tasks, 400 for bad messages, nothing recorded for unknown ids", async () => {
    const unknown = await api("POST", "/api/tasks/sm:ghost/commands", { json: { message: "pause" } });
    expect(unknown.status).toBe(404);
    expect((await api("GET", "/api/tasks/sm:ghost/state")).status).toBe(404);
    expect(node.store.get("sm:ghost")).toBeUndefined();
    await api("POST", "/api/tasks", { json: { id: "work:plain" } });
    const plainState = await api("GET", "/api/tasks/work:plain/state");
    expect(plainState.status).toBe(200);
    expect(plainState.body).toEqual({ id: "work:plain" });
    const bad = await api("POST", "/api/tasks/work:plain/commands", { json: { message: "explode" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("pause, resume, sleep, kill");
    const noUntil = await api("POST", "/api/tasks/work:plain/commands", { json: { message: "sleep" } });
    expect(noUntil.status).toBe(400);
    expect(noUntil.body.error).toContain("RFC 3339");
    const badUntil = await api("POST", "/api/tasks/work:plain/commands", {
      json: { message: "sleep", until: "tomorrow" },
    });
    expect(badUntil.status).toBe(400);
    const untilOnPause = await api("POST", "/api/tasks/work:plain/commands", {
      json: { message: "pause", until: "10m" },
    });
    expect(untilOnPause.status).toBe(400);
    await api("DELETE", "/api/tasks/work:plain");
  });

  test("a request with a non-loopback Host header is refused (DNS rebinding), loopback names are fine", async () => {
    const port = node.server.address.port;
    const evil = await rawGet(port, "/api/tasks", "evil.example:80");
    expect(evil.status).toBe(403);
    expect(evil.body).toContain("loopback");
    expect((await rawGet(port, "/healthz", `localhost:${port}`)).status).toBe(200);
    expect((await rawGet(port, "/healthz", `127.0.0.1:${port}`)).status).toBe(200);
  });
});

/** GET with an explicit Host header (fetch does not allow setting it). */
async function rawGet(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  const text = await new Promise<string>((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () =>
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    let got = "";
    sock.on("data", (d) => (got += d.toString()));
    sock.on("close", () => resolve(got));
    sock.on("error", reject);
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

describe("HTTP server with a token", () => {
  const TOKEN = "s3cret-token-value-42";
  let node: OpsNode;
  let base: string;
  beforeAll(async () => {
    node = await startOpsNode({ token: TOKEN });
    base = node.server.url;
  });
  afterAll(async () => {
    await node.close();
  });

  test("state-changing requests without the token are refused (401 + WWW-Authenticate); a wrong token too", async () => {
    const none = await call(base, "POST", "/api/tasks", { json: { id: "work:t" } });
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect(none.body.error).toContain("Authorization: Bearer");
    const wrong = await call(base, "POST", "/api/tasks", {
      json: { id: "work:t" },
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    const del = await call(base, "DELETE", "/api/tasks/work:t");
    expect(del.status).toBe(401);
    const cmd = await call(base, "POST", "/api/nodes/node-1/commands", { json: { command: "freeze" } });
    expect(cmd.status).toBe(401);
    expect(node.consumer.frozen()).toBe(false);
    expect((await node.services.client.tasks()).length).toBe(0);
  });

  test("with the right token they succeed; reads need no token", async () => {
    const ok = await call(base, "POST", "/api/tasks", {
      json: { id: "work:t" },
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(201);
    expect((await call(base, "GET", "/api/tasks")).status).toBe(200);
    expect((await call(base, "GET", "/metrics")).status).toBe(200);
    expect((await call(base, "GET", "/info")).status).toBe(200);
  });

  test("the token never appears in the node's logs", () => {
    expect(node.logs.length).toBeGreaterThan(0);
    expect(node.logs.some((l) => l.includes(TOKEN))).toBe(false);
  });
});

describe("auth rules (unit)", () => {
  const req = (authorization?: string): IncomingMessage =>
    ({ headers: authorization ? { authorization } : {} }) as IncomingMessage;

  test("state changes are refused on a non-loopback address without a token, allowed on loopback", () => {
    const refused = (() => {
      try {
        authorizeChange(req(), { loopback: false, address: "0.0.0.0:7070" });
      } catch (err) {
        return err as HttpError;
      }
    })();
    expect(refused?.status).toBe(403);
    expect(refused?.message).toContain("METAFORA_TOKEN");
    expect(() => authorizeChange(req(), { loopback: true, address: "127.0.0.1:7070" })).not.toThrow();
    // With a token, the address does not matter: the token does.
    expect(() =>
      authorizeChange(req("Bearer t0k"), { token: "t0k", loopback: false, address: "0.0.0.0:7070" }),
    ).not.toThrow();
    expect(() =>
      authorizeChange(req("bearer t0k"), { token: "t0k", loopback: false, address: "0.0.0.0:7070" }),
    ).not.toThrow();
    expect(() => authorizeChange(req("Basic t0k"), { token: "t0k", loopback: true, address: "x" })).toThrow(HttpError);
    expect(() => authorizeChange(req("Bearer t0k2"), { token: "t0k", loopback: true, address: "x" })).toThrow(
      HttpError,
    );
  });

  test("loopback detection and constant-time token comparison", () => {
    for (const a of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"])
      expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "::ffff:10.0.0.1", "localhost.evil"])
      expect(isLoopbackAddress(a)).toBe(false);
    expect(tokenMatches("abc", "abc")).toBe(true);
    expect(tokenMatches("abc", "abcd")).toBe(false);
    expect(tokenMatches("", "abc")).toBe(false);
  });

  test("listen addresses are parsed strictly", async () => {
    expect(parseListen("127.0.0.1:7070")).toEqual({ host: "127.0.0.1", port: 7070 });
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 });
    expect(() => parseListen("7070")).toThrow(/host:port/);
    expect(() => parseListen("127.0.0.1:99999")).toThrow(/host:port/);
  });
});

describe("server lifecycle", () => {
  let extra: OpsNode | undefined;
  afterEach(async () => {
    await extra?.close();
    extra = undefined;
  });

  test("a port already in use is a clear error naming the address", async () => {
    extra = await startOpsNode();
    const busy = `127.0.0.1:${extra.server.address.port}`;
    await expect(startHttpServer(extra.services, { listen: busy })).rejects.toThrow(
      new RegExp(`cannot listen on ${busy.replace(/\./g, "\\.")}.*another port`),
    );
  });

  test("close() ends keep-alive connections and frees the port; calling it twice is harmless", async () => {
    extra = await startOpsNode();
    const url = extra.server.url;
    expect((await fetch(`${url}/healthz`)).status).toBe(200); // leaves a keep-alive connection
    await extra.server.close();
    await extra.server.close();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
