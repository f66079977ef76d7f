/**
 * The chaos suite's handler, copied by the harness into each run's handler folder and loaded by
 * the compiled binary like any user's handler (so it imports only "metafora" and node: modules).
 *
 * It is written the way the README teaches:
 *
 *   while (await ctx.sleep(STEP_MS)) { if (!ctx.owned()) return "release"; step(); }
 *
 * Each start, step and stop goes to this node's history file (CHAOS_HISTORY), one JSON line
 * written synchronously, and each step is committed to a fenced register in etcd
 * (CHAOS_ETCD_URL, key CHAOS_REGISTER_PREFIX + task id) that only accepts a token at least as
 * high as the one it holds. The history says what the handler did; the register says what a
 * fenced downstream system let through.
 */
import { Buffer } from "node:buffer";
import { appendFileSync } from "node:fs";
import { defineHandler, type HandlerContext } from "metafora";

const HISTORY = process.env.CHAOS_HISTORY ?? "";
const ETCD_URL = process.env.CHAOS_ETCD_URL ?? "";
const REGISTER_PREFIX = process.env.CHAOS_REGISTER_PREFIX ?? "/chaos-register/";
const STEP_MS = Number(process.env.CHAOS_STEP_MS ?? "50");
/** A register write that takes longer than this counts as unanswered (etcd paused or down). */
const COMMIT_TIMEOUT_MS = 1000;

if (HISTORY === "" || ETCD_URL === "") {
  throw new Error("the chaos handler needs CHAOS_HISTORY (history file) and CHAOS_ETCD_URL (etcd for the register)");
}

const mono = (): number => performance.timeOrigin + performance.now();
const record = (e: Record<string, unknown>): void => appendFileSync(HISTORY, `${JSON.stringify(e)}\n`);

/** The pause-proof primitives; optional here only for the fallback below. */
interface PausePrimitives {
  owned?(): boolean;
  sleep?(ms: number): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------
// FALLBACK, remove once ctx.sleep / ctx.owned exist in the runtime (the fencing work). It
// emulates them with what the context had before: the abort signal and a timer. This
// is exactly the old README pattern, so a node paused past its lease takes one more step after
// SIGCONT and the checker reports it: the suite proves it can fail.
// ---------------------------------------------------------------------------------------------
function primitives(ctx: HandlerContext & PausePrimitives): {
  owned(): boolean;
  sleep(ms: number): Promise<boolean>;
  kind: "ctx" | "fallback";
} {
  if (typeof ctx.sleep === "function" && typeof ctx.owned === "function") {
    return { owned: () => ctx.owned!(), sleep: (ms) => ctx.sleep!(ms), kind: "ctx" };
  }
  return {
    kind: "fallback",
    owned: () => !ctx.signal.aborted,
    sleep: (ms) =>
      new Promise<boolean>((resolve) => {
        if (ctx.signal.aborted) return resolve(false);
        const done = (): void => {
          clearTimeout(timer);
          ctx.signal.removeEventListener("abort", done);
          resolve(!ctx.signal.aborted);
        };
        const timer = setTimeout(done, ms);
        ctx.signal.addEventListener("abort", done, { once: true });
      }),
  };
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
/** Register values start with the token, zero-padded, so etcd's byte-wise VALUE compare orders them by token. */
const fence = (token: number): string => `{"fence":"${String(token).padStart(16, "0")}"`;

interface TxnAnswer {
  header?: { revision?: string };
  succeeded?: boolean;
  responses?: Array<{ response_range?: { kvs?: Array<{ value?: string; mod_revision?: string }> } }>;
}

async function txn(body: unknown): Promise<TxnAnswer> {
  const res = await fetch(`${ETCD_URL}/v3/kv/txn`, {
    method: "POST",
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(COMMIT_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`etcd answered ${res.status}`);
  return (await res.json()) as TxnAnswer;
}

/**
 * Write {token, step, node} to the task's register if the stored token is ≤ ours: one etcd
 * transaction comparing the stored value below the fence of token + 1 (a missing key fails a
 * VALUE compare, so the very first write creates the key only if it still does not exist).
 */
async function commit(
  task: string,
  token: number,
  step: number,
  node: string,
  attempt = 1,
): Promise<{ outcome: "accepted" | "rejected"; rev?: number; stored?: number }> {
  const key = b64(REGISTER_PREFIX + task);
  const value = b64(`${fence(token)},"token":${token},"step":${step},"node":${JSON.stringify(node)}}`);
  const put = [{ request_put: { key, value } }];
  const read = [{ request_range: { key } }];
  const fenced = await txn({
    compare: [{ key, target: "VALUE", result: "LESS", value: b64(fence(token + 1)) }],
    success: put,
    failure: read,
  });
  if (fenced.succeeded) return { outcome: "accepted", rev: Number(fenced.header?.revision) };
  const stored = fenced.responses?.[0]?.response_range?.kvs?.[0]?.value;
  if (stored !== undefined) {
    const parsed = JSON.parse(Buffer.from(stored, "base64").toString("utf8")) as { token: number };
    return { outcome: "rejected", stored: parsed.token };
  }
  const created = await txn({
    compare: [{ key, target: "CREATE", result: "EQUAL", create_revision: "0" }],
    success: put,
    failure: read,
  });
  if (created.succeeded) return { outcome: "accepted", rev: Number(created.header?.revision) };
  // Someone created it in between: one more fenced attempt decides (registers are never deleted).
  if (attempt >= 3) throw new Error(`register ${task} kept changing between compare and create`);
  return commit(task, token, step, node, attempt + 1);
}

export default defineHandler({
  name: "chaos",
  async run(task, ctx) {
    const p = primitives(ctx);
    const base = { node: ctx.node, task: task.id, token: ctx.token };
    record({ k: "start", ...base, pid: process.pid, primitives: p.kind, mono: mono(), wall: Date.now() });
    let steps = 0;
    let reason = "stopped";
    try {
      while (await p.sleep(STEP_MS)) {
        if (!p.owned()) {
          reason = "not owned";
          return "release";
        }
        const step = ++steps;
        record({ k: "step", ...base, step, mono: mono(), wall: Date.now() });
        try {
          const answer = await commit(task.id, ctx.token, step, ctx.node);
          record({ k: "commit", ...base, step, ...answer, mono: mono() });
        } catch (err) {
          record({ k: "commit", ...base, step, outcome: "error", error: (err as Error).message, mono: mono() });
        }
      }
      const why = ctx.signal.reason as { reason?: unknown } | undefined;
      reason = typeof why?.reason === "string" ? why.reason : ctx.signal.aborted ? "aborted" : "not owned";
      return "release";
    } finally {
      record({ k: "stop", ...base, reason, steps, mono: mono(), wall: Date.now() });
    }
  },
});
