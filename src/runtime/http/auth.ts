/**
 * Who may change state through the HTTP API.
 *
 * - With a token configured, every state-changing request needs `Authorization: Bearer <token>`
 *   (compared in constant time). Reads stay open: health probes and Prometheus need no secret.
 * - Without a token, state changes are allowed only while the server listens on a loopback
 *   address; on any other address they are refused, so a node never exposes an open admin API.
 * - On a loopback address the Host header must name a loopback host, which defeats DNS
 *   rebinding (a web page whose domain resolves to 127.0.0.1 talking to the node).
 * The token itself is never logged or echoed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { HttpError } from "./json.ts";

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.x.x). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, "").toLowerCase();
  if (a === "::1" || a === "0:0:0:0:0:0:0:1") return true;
  const v4 = a.startsWith("::ffff:") ? a.slice(7) : a;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** Host names a loopback server may be reached by (Host header, port stripped). */
function isLoopbackHostHeader(host: string): boolean {
  let name = host.trim().toLowerCase();
  if (name.startsWith("[")) name = name.slice(1, name.indexOf("]") >= 0 ? name.indexOf("]") : undefined);
  else if (name.includes(":") && name.indexOf(":") === name.lastIndexOf(":")) name = name.slice(0, name.indexOf(":"));
  return name === "localhost" || name.endsWith(".localhost") || isLoopbackAddress(name);
}

/** Constant-time comparison (hashing first makes the lengths equal, so length leaks nothing). */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface AuthPolicy {
  /** Bearer token required for state changes, if configured. */
  token?: string;
  /** Whether the server is bound to a loopback address. */
  loopback: boolean;
  /** "host:port" actually bound, for error messages. */
  address: string;
}

/** Throws 403 when a loopback server is addressed by a non-loopback Host name (DNS rebinding). */
export function checkHost(req: IncomingMessage, policy: AuthPolicy): void {
  if (!policy.loopback || policy.token) return;
  const host = req.headers.host;
  if (host !== undefined && !isLoopbackHostHeader(host)) {
    throw new HttpError(
      403,
      `Host ${JSON.stringify(host)} is not a loopback name; without a token this node only answers to localhost, 127.0.0.1 or [::1] (configure http.token to serve it under other names, e.g. behind a proxy)`,
    );
  }
}

/** Throws 401/403 unless this state-changing request is allowed. */
export function authorizeChange(req: IncomingMessage, policy: AuthPolicy): void {
  if (policy.token) {
    const header = req.headers.authorization;
    const match = typeof header === "string" ? /^Bearer[ \t]+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      throw new HttpError(
        401,
        'this request changes state and needs "Authorization: Bearer <token>" (the configured http.token)',
        {
          "www-authenticate": 'Bearer realm="metafora"',
        },
      );
    }
    if (!tokenMatches(match[1]!, policy.token)) {
      throw new HttpError(401, "the bearer token does not match the configured http.token", {
        "www-authenticate": 'Bearer realm="metafora", error="invalid_token"',
      });
    }
    return;
  }
  if (!policy.loopback) {
    throw new HttpError(
      403,
      `state-changing requests are refused: this node listens on ${policy.address}, which is not a loopback address, and no http.token is configured (set METAFORA_TOKEN or [http] token)`,
    );
  }
}
