/**
 * JSON in and out of node:http: bounded body reading, parse errors that never escape as
 * crashes, and one error shape for every reply: {"error": "..."} with the right status.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { suggest } from "../config/layer.ts";
import { OperatorError, httpStatusOf } from "../operator/types.ts";

/** Largest request body accepted (1 MiB): task props are small; anything bigger is a mistake or abuse. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** An error that carries its HTTP status (and optional headers, e.g. WWW-Authenticate, Allow). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  contentType: string,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** Status and message of any thrown value; unknown errors are 500 with their message. */
export function errorReply(err: unknown): { status: number; message: string; headers: Record<string, string> } {
  if (err instanceof HttpError) return { status: err.status, message: err.message, headers: err.headers };
  if (err instanceof OperatorError) return { status: httpStatusOf(err.kind), message: err.message, headers: {} };
  return { status: 500, message: err instanceof Error ? err.message : String(err), headers: {} };
}

export function sendError(res: ServerResponse, err: unknown): void {
  const { status, message, headers } = errorReply(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: message }, headers);
}

/**
 * Read and parse a JSON request body. Requires Content-Type application/json: besides being
 * honest, it forces browsers into a CORS preflight (which we never grant), so a web page
 * cannot make an operator's browser change a loopback node's state.
 */
export async function readJsonBody(req: IncomingMessage, limit = DEFAULT_BODY_LIMIT): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(
      415,
      `expected a JSON body with "Content-Type: application/json", got ${type ? JSON.stringify(type) : "no Content-Type"}`,
    );
  }
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit)
    throw new HttpError(413, `request body is ${declared} bytes; the limit is ${limit}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > limit) throw new HttpError(413, `request body is larger than the limit of ${limit} bytes`);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") throw new HttpError(400, "expected a JSON body, got an empty one");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A parsed body that must be a JSON object; `expected` describes its shape for the error.
 * With `allowed`, any other field is an error naming it and the allowed ones: a misspelt
 * "prop" must not be ignored and leave a task with empty props.
 */
export function asObject(body: unknown, expected: string, allowed?: readonly string[]): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(
      400,
      `expected a JSON object ${expected}, got ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}`,
    );
  }
  if (allowed) {
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) {
      const hints = unknown.map((k) => {
        // A one- or two-letter field is close to everything; only guess for real words.
        const guess = k.length > 2 ? suggest(k, allowed) : undefined;
        return `${JSON.stringify(k)}${guess ? ` (did you mean ${JSON.stringify(guess)}?)` : ""}`;
      });
      throw new HttpError(
        400,
        `unknown field${unknown.length > 1 ? "s" : ""} ${hints.join(", ")}; allowed: ${allowed.join(", ")}; expected ${expected}`,
      );
    }
  }
  return body as Record<string, unknown>;
}
