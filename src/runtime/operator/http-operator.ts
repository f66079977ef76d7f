/**
 * The Operator over a node's JSON API: how the CLI reaches a node running the embedded
 * coordinator (its tasks live inside that process). Errors come back as {"error": "..."}
 * with a status, which map back onto OperatorError kinds.
 */
import type { NodeCommand, SubmitResult, TaskProps, TaskSubmission } from "../../types.ts";
import {
  OperatorError,
  kindOfHttpStatus,
  type NodeView,
  type Operator,
  type SubmitOutcome,
  type TaskCommandRequest,
  type TaskDetail,
  type TaskRow,
  type TaskStateView,
} from "./types.ts";

export interface HttpOperatorOptions {
  /** Base URL of the node, e.g. "http://127.0.0.1:7070". */
  baseUrl: string;
  /** Bearer token (the node's http.token), sent with every request. */
  token?: string;
  /** Per-request timeout in ms (default 10 s). */
  timeout?: number;
  fetch?: typeof fetch;
}

/** The URL a client uses for a listen address: wildcard binds are reached over loopback. */
export function clientUrlForListen(listen: string): string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen.trim());
  if (!m) throw new OperatorError("invalid", `http.listen ${JSON.stringify(listen)} is not "host:port"`);
  let host = m[1] ?? m[2]!;
  if (host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${m[3]}`;
}

/** A node accepts request bodies up to 1 MiB; bulk submits stay well below it. */
const BULK_REQUEST_ITEMS = 5_000;
const BULK_REQUEST_BYTES = 512 * 1024;

export class HttpOperator implements Operator {
  readonly target: string;
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly opts: HttpOperatorOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.target = `the node at ${this.base}`;
    this.fetchFn = opts.fetch ?? fetch;
  }

  async submitTask(id: string, props?: TaskProps): Promise<SubmitOutcome> {
    const reply = (await this.request("POST", "/api/tasks", props === undefined ? { id } : { id, props })) as {
      warning?: unknown;
    };
    return typeof reply?.warning === "string" ? { warning: reply.warning } : {};
  }

  async resetState(id: string): Promise<boolean> {
    const reply = (await this.request("DELETE", `/api/tasks/${encodeURIComponent(id)}/state`)) as { reset?: unknown };
    return reply?.reset === true;
  }

  /** In requests of at most BULK_REQUEST_ITEMS tasks or about BULK_REQUEST_BYTES of JSON. */
  async submitTasks(tasks: readonly TaskSubmission[]): Promise<SubmitResult[]> {
    const results: SubmitResult[] = [];
    let chunk: TaskSubmission[] = [];
    let bytes = 0;
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      const answer = (await this.request("POST", "/api/tasks", { tasks: chunk })) as { results: SubmitResult[] };
      results.push(...answer.results);
      chunk = [];
      bytes = 0;
    };
    for (const t of tasks) {
      const size = JSON.stringify(t).length + 1;
      if (chunk.length >= BULK_REQUEST_ITEMS || (chunk.length > 0 && bytes + size > BULK_REQUEST_BYTES)) await flush();
      chunk.push(t);
      bytes += size;
    }
    await flush();
    return results;
  }

  async deleteTask(id: string): Promise<void> {
    await this.request("DELETE", `/api/tasks/${encodeURIComponent(id)}`);
  }

  async tasks(): Promise<TaskRow[]> {
    return ((await this.request("GET", "/api/tasks")) as { tasks: TaskRow[] }).tasks;
  }

  async task(id: string): Promise<TaskDetail> {
    return (await this.request("GET", `/api/tasks/${encodeURIComponent(id)}`)) as TaskDetail;
  }

  async nodes(): Promise<NodeView[]> {
    return ((await this.request("GET", "/api/nodes")) as { nodes: NodeView[] }).nodes;
  }

  async nodeCommand(node: string, command: NodeCommand): Promise<void> {
    await this.request("POST", `/api/nodes/${encodeURIComponent(node)}/commands`, command);
  }

  async taskCommand(id: string, request: TaskCommandRequest): Promise<void> {
    const body = request.until
      ? { message: request.message, until: request.until.toISOString() }
      : { message: request.message };
    await this.request("POST", `/api/tasks/${encodeURIComponent(id)}/commands`, body);
  }

  async taskState(id: string): Promise<TaskStateView> {
    return (await this.request("GET", `/api/tasks/${encodeURIComponent(id)}/state`)) as TaskStateView;
  }

  async close(): Promise<void> {}

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeout ?? 10_000),
      });
    } catch (err) {
      const why =
        err instanceof Error && err.name === "TimeoutError"
          ? `no answer within ${this.opts.timeout ?? 10_000}ms`
          : describeFetchError(err);
      throw new OperatorError(
        "unavailable",
        `${this.target} is unreachable (${why}); is \`metafora run\` running with the same config?`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const message = (parsed as { error?: unknown } | undefined)?.error;
      let msg = typeof message === "string" ? message : `HTTP ${res.status} ${res.statusText}`.trim();
      if (res.status === 401) msg += " (set METAFORA_TOKEN or [http] token to the node's token)";
      throw new OperatorError(kindOfHttpStatus(res.status), msg);
    }
    if (parsed === undefined)
      throw new OperatorError("failed", `${this.target} answered ${method} ${path} with something that is not JSON`);
    return parsed;
  }
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  const code = (err as { code?: unknown }).code ?? (cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? `${code}: ${err.message}` : err.message;
}
