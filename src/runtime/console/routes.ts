/**
 * The operator console's routes:
 *   GET /                  the page (HTML shell)
 *   GET /console/app.js    the bundled app (Preact + htm + uPlot), inlined into the binary
 *   GET /console/app.css   its styles
 *   GET /api/events        Server-Sent Events: hello, then a snapshot every second (live.ts)
 * All reads: the same Host check as every request applies; actions go through the JSON API
 * with the same token rules.
 */
import { HttpError } from "../http/json.ts";
import type { Reply, Route } from "../http/types.ts";
import type { LiveFeed } from "./live.ts";
import { CONTENT_SECURITY_POLICY, PAGE_HTML } from "./page.ts";

interface Assets {
  SCRIPT: string;
  STYLES: string;
}

let assets: Promise<Assets> | undefined;

/** The bundle, imported once; a runtime without Bun's macros gets a clear 501. */
function loadAssets(): Promise<Assets> {
  assets ??= import("./assets.ts").catch((err: unknown) => {
    assets = undefined;
    throw new HttpError(
      501,
      `the console is not available in this runtime: its page is bundled by Bun (run the compiled binary, or npm start under Bun); ${firstLine(err)}`,
    );
  });
  return assets;
}

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** The cause in one plain line (runtimes colour their module errors with ANSI escapes). */
function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split("\n")[0] ?? "").replace(ANSI_COLOUR, "").trim();
}

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

export function consoleRoutes(feed: LiveFeed): Route[] {
  return [
    {
      method: "GET",
      path: "/",
      async handle(): Promise<Reply> {
        await loadAssets();
        return { status: 200, text: PAGE_HTML, contentType: "text/html; charset=utf-8", headers: SECURITY_HEADERS };
      },
    },
    {
      method: "GET",
      path: "/console/app.js",
      async handle(): Promise<Reply> {
        return {
          status: 200,
          text: (await loadAssets()).SCRIPT,
          contentType: "text/javascript; charset=utf-8",
          headers: SECURITY_HEADERS,
        };
      },
    },
    {
      method: "GET",
      path: "/console/app.css",
      async handle(): Promise<Reply> {
        return {
          status: 200,
          text: (await loadAssets()).STYLES,
          contentType: "text/css; charset=utf-8",
          headers: SECURITY_HEADERS,
        };
      },
    },
    {
      method: "GET",
      path: "/api/events",
      handle: (): Reply => ({ status: 200, stream: (res) => feed.attach(res) }),
    },
  ];
}
