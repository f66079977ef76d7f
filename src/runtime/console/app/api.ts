/**
 * The node's JSON API as the page uses it. Same origin only. The bearer token, when the node
 * wants one, is kept in sessionStorage (this tab, until it closes) and sent in the
 * Authorization header: never in a URL, never logged.
 */
export const TOKEN_KEY = "metafora.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function storedToken(): string | undefined {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function storeToken(token: string | undefined): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token is asked for again next time
  }
}

export async function api<T = unknown>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = storedToken();
  if (token && method !== "GET") headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    throw new ApiError(0, `the node did not answer (${err instanceof Error ? err.message : String(err)})`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const message = (parsed as { error?: unknown } | undefined)?.error;
    throw new ApiError(res.status, typeof message === "string" ? message : `HTTP ${res.status} ${res.statusText}`);
  }
  return parsed as T;
}

export const enc = encodeURIComponent;
