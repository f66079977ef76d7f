/**
 * The console against etcd: two compiled nodes share a namespace, and the page of either one
 * shows both nodes and every task (its node's view of the whole cluster).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startEtcd, type EtcdServer } from "../support/etcd.ts";
import { freePort } from "../support/ports.ts";
import { metaforaBinary } from "./support/binary.ts";
import { launchBrowser, type TestBrowser } from "./support/browser.ts";
import { runCli, startNode, type NodeProcess } from "./support/node.ts";
import { HANDLERS, makeWorkspace } from "./support/workspace.ts";

const UI_WAIT = 30_000;

let bin: string;
let etcd: EtcdServer;
let browser: TestBrowser;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [bin, etcd, browser] = await Promise.all([metaforaBinary(), startEtcd(), launchBrowser()]);
}, 240_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await browser?.close();
  await etcd?.stop();
});

describe("operator console, compiled binaries, etcd", () => {
  test("the page of either node shows both nodes and all tasks", async () => {
    const ws = makeWorkspace({ "worker.ts": HANDLERS.worker });
    cleanups.push(() => ws.remove());
    const cluster = { METAFORA_ETCD_ENDPOINTS: etcd.endpoint, METAFORA_NAMESPACE: `/console-${Date.now()}` };
    const start = async (name: string): Promise<{ node: NodeProcess; url: string }> => {
      const port = await freePort();
      const node = startNode(bin, {
        cwd: ws.dir,
        env: { ...cluster, METAFORA_NODE: name, METAFORA_HTTP: `127.0.0.1:${port}` },
      });
      cleanups.push(() => node.stop());
      return { node, url: `http://127.0.0.1:${port}` };
    };
    const [a, b] = await Promise.all([start("a"), start("b")]);
    await Promise.all([a.node.waitReady(a.url), b.node.waitReady(b.url)]);
    const ids = Array.from({ length: 8 }, (_, i) => `worker:c${i}`);
    for (const id of ids) expect((await runCli(bin, ["submit", id], { cwd: ws.dir, env: cluster })).code).toBe(0);

    for (const n of [a, b]) {
      const page = await browser.newPage();
      await page.goto(`${n.url}/`);
      await page.waitForSelector("[data-testid=connection]:has-text('live')", { timeout: UI_WAIT });
      await page.waitForSelector('[data-testid=nodes-table] tr[data-node="a"]', { timeout: UI_WAIT });
      await page.waitForSelector('[data-testid=nodes-table] tr[data-node="b"]', { timeout: UI_WAIT });
      // Every task listed and running, spread over both nodes (cluster totals agree).
      await page.waitForFunction(
        (want) => {
          const rows = Array.from(document.querySelectorAll("[data-testid=tasks-table] tbody tr"));
          const running = rows.filter((r) => r.getAttribute("data-state") === "running");
          const owners = new Set(running.map((r) => r.querySelector("td:nth-child(4)")?.textContent));
          return rows.length === want && running.length === want && owners.has("a") && owners.has("b");
        },
        ids.length,
        { timeout: UI_WAIT },
      );
      for (const id of ids) expect(await page.$(`tr[data-task="${id}"]`)).not.toBeNull();
      expect(await page.textContent("[data-testid=tasks-count]")).toBe(`1–${ids.length} of ${ids.length}`);
      const counts = await page.$$eval("[data-testid=nodes-table] td[data-testid=node-tasks]", (tds) =>
        tds.map((td) => Number(td.textContent)),
      );
      expect(counts.reduce((s, c) => s + c, 0)).toBe(ids.length);
      expect(await page.textContent("[data-testid=self-name]")).toBe(n === a ? "a" : "b");
      // This node's own figures: an etcd lease, and its keepalive round trip once one is confirmed.
      const self = `[data-testid=nodes-table] tr[data-node="${n === a ? "a" : "b"}"]`;
      expect(await page.textContent(`${self} td:nth-child(4)`)).toBe("10 s"); // the default lease_ttl
      await page.waitForFunction(
        (sel) => /ms$/.test(document.querySelector(`${sel} td:nth-child(5)`)?.textContent ?? ""),
        self,
        { timeout: UI_WAIT },
      );
      await page.close();
    }

    for (const n of [a, b]) n.node.signal("SIGTERM");
    for (const n of [a, b]) expect((await n.node.exited).code).toBe(0);
    expect(browser.offSiteRequests()).toEqual([]);
    expect(browser.requests().filter((u) => !u.startsWith("http://127.0.0.1:"))).toEqual([]);
    expect(browser.pageErrors()).toEqual([]);
  }, 90_000);
});
