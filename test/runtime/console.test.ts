/**
 * The operator console in a real browser (playwright-core + Debian's chromium) against the
 * compiled binary on the embedded coordinator: what it lists, that it follows changes made
 * elsewhere without a reload, every action, the token prompt, a node restart, and that no
 * request leaves 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { freePort } from "../support/ports.ts";
import { waitFor } from "../support/wait.ts";
import { metaforaBinary } from "./support/binary.ts";
import { launchBrowser, type TestBrowser } from "./support/browser.ts";
import { runCli, startNode, type NodeProcess } from "./support/node.ts";
import { HANDLERS, makeWorkspace, type Workspace } from "./support/workspace.ts";

/** A stateful handler that applies whatever command it is sent (pause, sleep, kill, …). */
const JOB = `
import { defineStatefulHandler } from "metafora";
export default defineStatefulHandler({
  async run(task, ctx) {
    ctx.log.info("job started " + task.id);
    const next = await ctx.commands[Symbol.asyncIterator]().next();
    return next.done ? "release" : next.value;
  },
});
`;

const UI_WAIT = 20_000;

let bin: string;
let browser: TestBrowser;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [bin, browser] = await Promise.all([metaforaBinary(), launchBrowser()]);
}, 240_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await browser?.close();
});

interface Node {
  ws: Workspace;
  url: string;
  env: Record<string, string>;
  start(): NodeProcess;
  cli(...args: string[]): ReturnType<typeof runCli>;
}

async function node(env: Record<string, string> = {}): Promise<Node> {
  const ws = makeWorkspace({ "worker.ts": HANDLERS.worker, "job.ts": JOB });
  cleanups.push(() => ws.remove());
  const port = await freePort();
  const full = { METAFORA_HTTP: `127.0.0.1:${port}`, METAFORA_NODE: "n1", ...env };
  return {
    ws,
    url: `http://127.0.0.1:${port}`,
    env: full,
    start() {
      const p = startNode(bin, { cwd: ws.dir, env: full });
      cleanups.push(() => p.stop());
      return p;
    },
    cli: (...args) => runCli(bin, args, { cwd: ws.dir, env: full }),
  };
}

const row = (id: string, state?: string): string => `tr[data-task="${id}"]${state ? `[data-state="${state}"]` : ""}`;

async function openTask(page: Page, id: string): Promise<void> {
  await page.click(`${row(id)} button.link`);
  await page.waitForSelector(`[data-testid=task-detail] h2:has-text("${id}")`, { timeout: UI_WAIT });
}

/** Click an action button, check the confirmation names what will happen, confirm. */
async function act(page: Page, scope: string, button: string, expectInDialog: string): Promise<void> {
  await page.click(`${scope} button:text-is("${button}")`);
  const dialog = await page.waitForSelector("[data-testid=confirm-dialog]", { timeout: UI_WAIT });
  expect(await dialog.textContent()).toContain(expectInDialog);
  await page.click('[data-testid=confirm-dialog] button:text-is("Confirm")');
}

async function noticeContaining(page: Page, text: string): Promise<string> {
  await page.waitForFunction(
    (t) => document.querySelector("[data-testid=notice]")?.textContent?.includes(t) ?? false,
    text,
    { timeout: UI_WAIT },
  );
  return (await page.textContent("[data-testid=notice]")) ?? "";
}

function assertStayedLocal(): void {
  expect(browser.requests().length).toBeGreaterThan(0);
  expect(browser.offSiteRequests()).toEqual([]);
  expect(browser.requests().filter((u) => !u.startsWith("http://127.0.0.1:"))).toEqual([]);
  expect(browser.pageErrors()).toEqual([]);
}

describe("operator console, compiled binary, embedded coordinator", () => {
  test("lists tasks with states, follows CLI changes live, every action works, survives a restart", async () => {
    const n = await node();
    const proc = n.start();
    await proc.waitReady(n.url);
    expect((await n.cli("submit", "worker:a")).code).toBe(0);
    expect((await n.cli("submit", "job:one")).code).toBe(0);

    const page = await browser.newPage();
    await page.goto(`${n.url}/`);
    await page.waitForSelector("[data-testid=connection]:has-text('live')", { timeout: UI_WAIT });
    await page.waitForSelector(row("worker:a", "running"), { timeout: UI_WAIT });
    await page.waitForSelector(row("job:one", "running"), { timeout: UI_WAIT });
    expect(await page.textContent(`${row("worker:a")} td:nth-child(4)`)).toBe("n1");
    expect(await page.textContent("[data-testid=self-name]")).toBe("n1");
    await page.waitForSelector('[data-testid=nodes-table] tr[data-node="n1"]', { timeout: UI_WAIT });

    // Submitted and paused from the CLI: the open page follows without a reload.
    const loads: string[] = [];
    page.on("load", () => loads.push(page.url()));
    expect((await n.cli("submit", "job:cli")).code).toBe(0);
    await page.waitForSelector(row("job:cli", "running"), { timeout: UI_WAIT });
    expect((await n.cli("pause", "job:cli")).code).toBe(0);
    await page.waitForSelector(row("job:cli", "paused"), { timeout: UI_WAIT });
    expect(loads).toEqual([]);

    // Filters go to the server: state=paused shows only the paused task.
    await page.selectOption("select[name=state]", "paused");
    await page.waitForFunction(
      () => document.querySelectorAll("[data-testid=tasks-table] tbody tr").length === 1,
      undefined,
      { timeout: UI_WAIT },
    );
    expect(await page.$(row("job:cli", "paused"))).not.toBeNull();
    expect(browser.requests().some((u) => u.includes("/api/tasks?") && u.includes("state=paused"))).toBe(true);
    await page.selectOption("select[name=state]", "");
    await page.waitForSelector(row("worker:a"), { timeout: UI_WAIT });

    // State-machine actions on job:one.
    await openTask(page, "job:one");
    const detail = "[data-testid=task-detail]";
    await act(page, detail, "Pause", "pause");
    await page.waitForSelector(row("job:one", "paused"), { timeout: UI_WAIT });
    await act(page, detail, "Resume", "resume");
    await page.waitForSelector(row("job:one", "running"), { timeout: UI_WAIT });
    await page.fill(`${detail} input[name=sleep-for]`, "10m");
    await act(page, detail, "Sleep", "10m");
    await page.waitForSelector(row("job:one", "sleeping"), { timeout: UI_WAIT });
    expect(await page.textContent(row("job:one"))).toContain("sleeping until");
    await act(page, detail, "Resume", "resume");
    await page.waitForSelector(row("job:one", "running"), { timeout: UI_WAIT });
    await act(page, detail, "Kill", "kill");
    // Killed is terminal: the task is finished and leaves the list; its state stays stored.
    await page.waitForSelector(row("job:one"), { state: "detached", timeout: UI_WAIT });
    await waitFor("job:one killed", async () =>
      (await n.cli("state", "job:one", "--json")).stdout.includes('"killed"'),
    );

    // Reset state: the page calls DELETE /api/tasks/:id/state and shows what the node said.
    const resetAnswer = page.waitForResponse(
      (r) => r.request().method() === "DELETE" && r.url().endsWith("/api/tasks/job%3Aone/state"),
      { timeout: UI_WAIT },
    );
    await act(page, detail, "Reset state", "Forget the stored state");
    const reset = await resetAnswer;
    if (reset.ok()) {
      await noticeContaining(page, "state of job:one reset");
    } else {
      const said = ((await reset.json()) as { error: string }).error;
      expect(said.length).toBeGreaterThan(0);
      await noticeContaining(page, said);
    }

    // Stop a running task (stop_task to its node): released, then claimed again.
    const tokenBefore = Number(await page.textContent(`${row("worker:a")} td:nth-child(5)`));
    await openTask(page, "worker:a");
    await act(page, detail, "Stop", "stop_task");
    await noticeContaining(page, "stop_task worker:a sent to n1");
    await page.waitForSelector('[data-testid=timeline] li[data-kind=released]:has-text("worker:a")', {
      timeout: UI_WAIT,
    });
    await page.waitForFunction(
      ([sel, before]) => Number(document.querySelector(`${sel} td:nth-child(5)`)?.textContent) > Number(before),
      [row("worker:a"), String(tokenBefore)] as const,
      { timeout: UI_WAIT },
    );

    // Node commands: freeze, unfreeze, balance.
    const nodeRow = '[data-testid=nodes-table] tr[data-node="n1"]';
    await act(page, nodeRow, "Freeze", "freeze");
    await page.waitForSelector(`${nodeRow} td:nth-child(3):has-text("frozen")`, { timeout: UI_WAIT });
    await act(page, nodeRow, "Unfreeze", "unfreeze");
    await page.waitForSelector(`${nodeRow} td:nth-child(3):text-is("no")`, { timeout: UI_WAIT });
    await act(page, nodeRow, "Balance", "balance");
    await page.waitForSelector('[data-testid=timeline] li[data-kind=command]:has-text("balance")', {
      timeout: UI_WAIT,
    });

    // Submit, then delete, from the page.
    await page.click('button:text-is("Submit task")');
    await page.fill("[data-testid=submit-dialog] input[name=id]", "worker:from-page");
    await page.fill("[data-testid=submit-dialog] textarea[name=props]", '{"n": 7}');
    await page.click('[data-testid=submit-dialog] button:text-is("Next")');
    expect(await page.textContent("[data-testid=confirm-dialog]")).toContain('{"n":7}');
    await page.click('[data-testid=confirm-dialog] button:text-is("Confirm")');
    await page.waitForSelector(row("worker:from-page", "running"), { timeout: UI_WAIT });
    await openTask(page, "worker:from-page");
    expect(await page.textContent("[data-testid=detail-props]")).toContain('"n": 7');
    await act(page, detail, "Delete", "Delete worker:from-page");
    await page.waitForSelector(row("worker:from-page"), { state: "detached", timeout: UI_WAIT });
    expect((await n.cli("tasks", "--json")).stdout).not.toContain("worker:from-page");

    // The timeline picture and the chart are drawn.
    expect(await page.$$("[data-testid=timeline-strip] rect")).not.toHaveLength(0);
    await page.waitForSelector("[data-testid=tasks-chart] canvas", { timeout: UI_WAIT });

    // Restart the node: the page says it is disconnected, then reconnects by itself.
    proc.signal("SIGTERM");
    expect((await proc.exited).code).toBe(0); // an open event stream does not hold up shutdown
    await page.waitForSelector("[data-testid=connection]:has-text('disconnected')", { timeout: UI_WAIT });
    const again = n.start();
    await again.waitReady(n.url);
    await page.waitForSelector("[data-testid=connection]:has-text('live')", { timeout: UI_WAIT });
    await page.waitForSelector(row("worker:a", "running"), { timeout: UI_WAIT });
    await page.waitForSelector(row("job:cli", "paused"), { timeout: UI_WAIT });
    expect(loads).toEqual([]);
    again.signal("SIGTERM");
    expect((await again.exited).code).toBe(0);
    await page.close();
    assertStayedLocal();
  }, 120_000);

  test("with a token, an action without it is refused with the reason; after entering it, it succeeds", async () => {
    const token = `t-${Math.random().toString(36).slice(2)}`;
    const n = await node({ METAFORA_TOKEN: token });
    const proc = n.start();
    await proc.waitReady(n.url);
    const page = await browser.newPage();
    await page.goto(`${n.url}/`);
    await page.waitForSelector("[data-testid=connection]:has-text('live')", { timeout: UI_WAIT });

    await page.click('button:text-is("Submit task")');
    await page.fill("[data-testid=submit-dialog] input[name=id]", "worker:guarded");
    await page.click('[data-testid=submit-dialog] button:text-is("Next")');
    await page.click('[data-testid=confirm-dialog] button:text-is("Confirm")');
    const refused = await noticeContaining(page, "Refused (HTTP 401)");
    expect(refused).toContain("Authorization: Bearer");
    await page.waitForSelector("[data-testid=token-dialog]", { timeout: UI_WAIT });
    expect((await n.cli("tasks", "--json")).stdout).not.toContain("worker:guarded");

    await page.fill("[data-testid=token-dialog] input[name=token]", token);
    await page.click('[data-testid=token-dialog] button:text-is("Use token and retry")');
    await noticeContaining(page, "worker:guarded submitted");
    await page.waitForSelector(row("worker:guarded", "running"), { timeout: UI_WAIT });

    // Asked once: the next action goes through without a prompt.
    await openTask(page, "worker:guarded");
    await act(page, "[data-testid=task-detail]", "Delete", "Delete worker:guarded");
    await noticeContaining(page, "worker:guarded deleted");
    expect(await page.$("[data-testid=token-dialog]")).toBeNull();

    // Kept for this tab only, never in a URL.
    expect(await page.evaluate(() => sessionStorage.getItem("metafora.token"))).toBe(token);
    expect(browser.requests().filter((u) => u.includes(token))).toEqual([]);
    expect(proc.output()).not.toContain(token);
    proc.signal("SIGTERM");
    expect((await proc.exited).code).toBe(0);
    await page.close();
    assertStayedLocal();
  }, 60_000);
});
