/**
 * A real Chromium for the console tests, driven by playwright-core: Debian's `chromium`
 * (`$CHROMIUM_BIN`, else /usr/bin/chromium; .ci/run installs it), headless, with a fresh
 * profile and the flags that keep it off the network (no background fetches, component
 * updates, sync or QUIC). Every request the pages make is recorded; anything not addressed to
 * 127.0.0.1 is aborted and reported by offSiteRequests().
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface TestBrowser {
  readonly context: BrowserContext;
  newPage(): Promise<Page>;
  /** Every URL requested by any page so far. */
  requests(): readonly string[];
  /** Requests not addressed to 127.0.0.1 (they were aborted). */
  offSiteRequests(): readonly string[];
  /** Uncaught errors in any page. */
  pageErrors(): readonly string[];
  close(): Promise<void>;
}

export function chromiumBinary(): string {
  const bin = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
  if (!existsSync(bin))
    throw new Error(
      `chromium not found at ${bin}: install Debian's chromium (bash .ci/run does this) or set CHROMIUM_BIN`,
    );
  return bin;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "metafora-chromium-"));
  let context: BrowserContext;
  try {
    // launchPersistentContext is playwright's way to pass --user-data-dir (a fresh profile).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumBinary(),
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1400, height: 900 },
      timeout: 30_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const requests: string[] = [];
  const offSite: string[] = [];
  const errors: string[] = [];
  const local = (url: string): boolean => {
    try {
      const u = new URL(url);
      return u.hostname === "127.0.0.1" && (u.protocol === "http:" || u.protocol === "ws:");
    } catch {
      return false;
    }
  };
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    if (local(url) || url.startsWith("data:")) return route.continue();
    offSite.push(url);
    return route.abort("blockedbyclient");
  });
  context.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith("data:")) requests.push(url);
    if (!local(url) && !url.startsWith("data:") && !offSite.includes(url)) offSite.push(url);
  });
  const watch = (page: Page): void => {
    page.on("pageerror", (e) => errors.push(e.message));
  };
  for (const p of context.pages()) watch(p);
  context.on("page", watch);
  return {
    context,
    async newPage() {
      return context.pages().find((p) => p.url() === "about:blank") ?? (await context.newPage());
    },
    requests: () => requests,
    offSiteRequests: () => offSite,
    pageErrors: () => errors,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
