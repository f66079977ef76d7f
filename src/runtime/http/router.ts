/** A tiny path router: exact segments and `:param` segments, 404 vs 405 told apart. */
import { HttpError } from "./json.ts";
import type { Route } from "./types.ts";

interface Compiled {
  route: Route;
  segments: string[];
}

export class Router {
  private readonly routes: Compiled[];

  constructor(routes: Route[]) {
    this.routes = routes.map((route) => ({ route, segments: split(route.path) }));
  }

  /** The route for this method and path, with its params; throws 404/405/400 HttpErrors. */
  match(method: string, pathname: string): { route: Route; params: Record<string, string> } {
    const parts = split(pathname);
    const allowed = new Set<string>();
    for (const c of this.routes) {
      const params = matchSegments(c.segments, parts);
      if (!params) continue;
      if (c.route.method === method || (method === "HEAD" && c.route.method === "GET"))
        return { route: c.route, params };
      allowed.add(c.route.method);
    }
    if (allowed.size > 0) {
      const list = [...allowed].sort().join(", ");
      throw new HttpError(405, `${method} is not allowed on ${pathname}; allowed: ${list}`, { allow: list });
    }
    throw new HttpError(404, `no such endpoint: ${pathname}`);
  }
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(":")) {
      try {
        params[p.slice(1)] = decodeURIComponent(v);
      } catch {
        throw new HttpError(400, `path segment ${JSON.stringify(v)} is not valid percent-encoding`);
      }
    } else if (p !== v) {
      return undefined;
    }
  }
  return params;
}
