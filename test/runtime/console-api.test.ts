/**
 * The console's server side, in process: filtering and paging of GET /api/tasks, the event
 * stream (hello, snapshots with timeline events, and that an open stream never holds up
 * close()), this node's figures in /api/nodes, and the page and bundle routes.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Timeline } from "../../src/runtime/console/timeline.ts";
import type { HelloMessage, SnapshotMessage } from "../../src/runtime/console/types.ts";
import { NodeVitals } from "../../src/runtime/console/vitals.ts";
import { startHttpServer } from "../../src/runtime/http/server.ts";
import { waitFor } from "../support/wait.ts";
import { startOpsNode, type OpsNode } from "./ops-fixture.ts";

let node: OpsNode | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(node!.server.url + path);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

interface Row {
  id: string;
  owner?: string;
  handler?: string;
  state?: { code: string };
}

/** Read SSE messages from a stream until `until` says stop (bounded by the caller's deadline). */
async function readEvents(
  res: Response,
  until: (events: Array<{ event: string; data: unknown }>) => boolean,
): Promise<Array<{ event: string; data: unknown }>> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const events: Array<{ event: string; data: unknown }> = [];
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) events.push({ event, data: JSON.parse(data) });
    }
  }
  await reader.cancel().catch(() => undefined);
  return events;
}

describe("GET /api/tasks filters and pages on the server", () => {
  test("no parameters: every task and total; filters by state, handler, node, q; paging with total", async () => {
    node = await startOpsNode();
    const client = node.broker.client();
    for (let i = 0; i < 30; i++) await client.submitTask(`work:t${String(i).padStart(2, "0")}`, {});
    await client.submitTask("sm:one", {});
    await client.submitTask("other:x", { handler: "nobody" }); // no handler here: never claimed
    await waitFor("31 tasks claimed", async () => (await client.tasks()).filter((t) => t.owner).length === 31);
    await node.commands.send("sm:one", { code: "pause" });
    await waitFor(
      "sm:one paused",
      async () =>
        ((await get("/api/tasks/sm:one/state")).body.state as { code?: string } | undefined)?.code === "paused",
    );

    const all = await get("/api/tasks");
    expect(all.status).toBe(200);
    expect((all.body.tasks as Row[]).length).toBe(32);
    expect(all.body.total).toBe(32);
    expect(all.body.offset).toBeUndefined();

    const page = await get("/api/tasks?offset=10&limit=5");
    expect((page.body.tasks as Row[]).map((r) => r.id)).toEqual([
      "work:t08",
      "work:t09",
      "work:t10",
      "work:t11",
      "work:t12",
    ]); // sorted by id: other:x, sm:one, work:t00…
    expect(page.body).toMatchObject({ total: 32, offset: 10, limit: 5 });

    const paused = await get("/api/tasks?state=paused");
    expect((paused.body.tasks as Row[]).map((r) => r.id)).toEqual(["sm:one"]);
    expect((paused.body.tasks as Row[])[0]!.state?.code).toBe("paused");
    expect((await get("/api/tasks?state=unclaimed")).body.total).toBe(1);
    expect((await get("/api/tasks?state=running")).body.total).toBe(31);
    expect((await get("/api/tasks?handler=nobody")).body.total).toBe(1);
    expect((await get("/api/tasks?handler=work&q=T2&limit=3")).body).toMatchObject({ total: 10 });
    expect((await get("/api/tasks?node=node-1")).body.total).toBe(31);
    expect((await get("/api/tasks?node=elsewhere")).body.total).toBe(0);
    // Rows of a page carry handler (and state where stored) even from a plain operator.
    expect(((await get("/api/tasks?q=other&limit=1")).body.tasks as Row[])[0]!.handler).toBe("nobody");
  });

  test("bad parameters are refused with what was expected", async () => {
    node = await startOpsNode();
    const cases: Array<[string, string]> = [
      ["/api/tasks?limit=0", "limit"],
      ["/api/tasks?limit=10001", "1 to 10000"],
      ["/api/tasks?offset=-1", "offset"],
      ["/api/tasks?state=asleep", "running, unclaimed, runnable"],
      ["/api/tasks?colour=red", 'unknown query parameter "colour"'],
      ["/api/tasks?q=a&q=b", "given 2 times"],
    ];
    for (const [path, says] of cases) {
      const res = await get(path);
      expect(res.status).toBe(400);
      expect(String(res.body.error)).toContain(says);
    }
  });
});

describe("the console's event stream and figures", () => {
  test("hello then snapshots with timeline events; /api/nodes carries this node's figures", async () => {
    node = await startOpsNode();
    const timeline = new Timeline(node.consumer, { node: "node-1", sampleEvery: 100 }).start();
    const vitals = new NodeVitals().start();
    node.services.console = {
      timeline,
      vitals,
      version: "9.9.9",
      coordinator: "embedded",
      handlerNames: ["work", "sm"],
    };
    try {
      const res = await fetch(`${node.server.url}/api/events`, { signal: AbortSignal.timeout(15_000) });
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      setTimeout(() => void node!.broker.client().submitTask("work:live", {}), 50);
      const events = await readEvents(res, (evs) =>
        evs.some(
          (e) =>
            e.event === "snapshot" &&
            (e.data as SnapshotMessage).events.some((t) => t.kind === "claimed" && t.task === "work:live"),
        ),
      );
      const hello = events[0]!;
      expect(hello.event).toBe("hello");
      expect((hello.data as HelloMessage).self).toMatchObject({
        name: "node-1",
        version: "9.9.9",
        coordinator: "embedded",
        tokenRequired: false,
        handlers: ["work", "sm"],
      });
      const claimed = events
        .flatMap((e) => (e.event === "snapshot" ? (e.data as SnapshotMessage).events : []))
        .find((t) => t.task === "work:live")!;
      expect(claimed).toMatchObject({ kind: "claimed", node: "node-1", handler: "work" });
      expect(claimed.token).toBeGreaterThan(0);

      const nodes = await get("/api/nodes");
      expect(nodes.body.nodes).toEqual([{ name: "node-1", tasks: 1 }]);
      expect(nodes.body.self).toMatchObject({ name: "node-1", frozen: false, running: 1, version: "9.9.9" });
    } finally {
      timeline.close();
      vitals.close();
    }
  });

  test("an open event stream does not hold up close()", async () => {
    node = await startOpsNode();
    // A grace period far longer than the deadline below: only ending the stream lets close() finish.
    const server = await startHttpServer(node.services, { listen: "127.0.0.1:0", closeGrace: 120_000 });
    const res = await fetch(`${server.url}/api/events`);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("retry:");
    const closed = await Promise.race([
      server.close().then(() => "closed"),
      new Promise((r) => setTimeout(() => r("still open"), 10_000)),
    ]);
    expect(closed).toBe("closed");
    let ended = false;
    for (let i = 0; i < 100 && !ended; i++) ended = (await reader.read()).done;
    expect(ended).toBe(true);
  });

  test("the page, its script and styles come from the node, with a same-origin-only policy", async () => {
    node = await startOpsNode();
    const page = await fetch(`${node.server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('src="/console/app.js"');
    expect(html).not.toMatch(/https?:\/\//);
    const js = await fetch(`${node.server.url}/console/app.js`);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect((await js.text()).length).toBeGreaterThan(10_000);
    const css = await fetch(`${node.server.url}/console/app.css`);
    expect(await css.text()).toContain(".uplot");
  });
});
