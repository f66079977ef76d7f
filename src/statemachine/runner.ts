/**
 * Runs one claimed task through the state machine until it reaches a terminal
 * state ("done") or must leave this node ("release").
 *
 * Differences from Go, all deliberate:
 * - A state store failure rejects with StateStoreError: the consumer releases the task and
 *   backs off. Go unschedules (deletes) the task.
 * - A handler that throws, returns nothing or returns an invalid message produces an `error`
 *   message carrying the reason (with the stack for thrown errors). Go crashes on nil.
 *   Exception: after a stop, the stop's own abort error (signal.reason, or an AbortError)
 *   means "release", so handlers may simply let an aborted fetch or sleep throw.
 * - An invalid transition becomes an `error` message naming it; if `error` is invalid too
 *   (paused has no error rule), the task is released unchanged, as in Go: it stays paused
 *   wherever it is claimed next.
 * - `release` that changes neither the state code nor the error count is not stored (Go
 *   does the same; its own tests still expect the store and hang).
 * - On leaving the node, commands already received are not dropped: the listener is stopped
 *   and whatever it delivered is applied to the state (without running the handler) before
 *   returning, so e.g. a `pause` that raced a shutdown is stored and honoured by the next
 *   owner. A faulted task gets its error-policy decision first. Exception: when the claim is
 *   gone (stop reason lost, deleted or lease), nothing more is written, since another node
 *   may own the task already; the dropped commands are logged.
 * - Every state write and every command taken is fenced by the claim (node and token): a
 *   store that refuses a write (ClaimLostError) ends the run with that error, which the
 *   consumer treats as a lost claim. Before each write the runner also checks that the claim
 *   is still vouched for (deadline not passed, no stall past the safety margin): a step that
 *   ends after such a pause stores nothing.
 */
import { ClaimLostError, StopError } from "../errors.ts";
import { claimStillHeld } from "../consumer/task-run.ts";
import { settleWithin } from "../internal/timers.ts";
import type { ClaimRef, HandlerContext, HandlerResult, Logger, Task, TaskProps } from "../types.ts";
import { StateStoreError } from "./errors.ts";
import { Mailbox } from "./mailbox.ts";
import {
  describeMessage,
  describeState,
  errorMessage,
  messageProblem,
  normalizeHandlerResult,
  releaseMessage,
  runMessage,
} from "./messages.ts";
import { applyMessage } from "./rules.ts";
import {
  isTerminal,
  type ErrorPolicy,
  type Message,
  type State,
  type StatefulContext,
  type StatefulRun,
  type StateStore,
  type TaskCommandSource,
} from "./types.ts";

export interface RunnerOptions<P extends TaskProps> {
  task: Task<P>;
  ctx: HandlerContext;
  run: StatefulRun<P>;
  store: StateStore;
  commands: TaskCommandSource;
  errorPolicy: ErrorPolicy;
  /** Called with each state the task enters on this node (the loaded one first). */
  onState?: (state: State, since: Date) => void;
  /** How long to wait for the command listener to stop when leaving (default 2 s). */
  listenerStopTimeout?: number;
}

/** One turn of the machine: the message to apply, and the state to apply it to. */
interface Step {
  readonly message: Message;
  /** Usually the current state; in fault, with the error history the policy kept. */
  readonly state: State;
}

const LISTEN_RETRY_INITIAL = 500;
const LISTEN_RETRY_MAX = 30_000;

export async function runStateMachine<P extends TaskProps>(opts: RunnerOptions<P>): Promise<HandlerResult> {
  const { task, ctx, store } = opts;
  const log = ctx.log;
  const stopTimeout = opts.listenerStopTimeout ?? 2000;
  const mailbox = new Mailbox();
  const listening = new AbortController();
  let pumpDone: Promise<void> | undefined;

  // A stop (shutdown, balance, lost claim...) is a `release` to whatever state is current.
  const onAbort = (): void => mailbox.push(releaseMessage());
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener("abort", onAbort, { once: true });

  try {
    let state: State;
    try {
      state = (await store.load(task.id)) ?? { code: "runnable" };
    } catch (err) {
      throw new StateStoreError("load", task.id, err);
    }
    if (isTerminal(state.code)) {
      log.info(`state is ${describeState(state)}: nothing to run, the task is done`);
      return "done";
    }
    opts.onState?.(state, new Date());
    // A task stopped before it started takes no commands: they stay for the next owner.
    if (!ctx.signal.aborted) pumpDone = pumpCommands(opts, mailbox, listening.signal);

    // Draining = leaving this node: the listener is stopped and what it already delivered is
    // applied without running the handler. A task stopped before it started goes straight there.
    let draining = false;
    const startDraining = async (): Promise<void> => {
      draining = true;
      listening.abort();
      if (pumpDone) await settleWithin(pumpDone, stopTimeout);
    };
    if (ctx.signal.aborted) await startDraining();
    for (;;) {
      let step: Step;
      if (!draining) {
        step = await execute(state, opts, mailbox);
      } else if (claimGone(ctx)) {
        // Another node may own the task already: writing its state now could overwrite theirs.
        const dropped = drainAll(mailbox).filter((m) => m.code !== "release");
        if (dropped.length > 0)
          log.warn(
            `claim lost: ${dropped.length} received command(s) not applied: ${dropped.map(describeMessage).join(", ")}`,
          );
        return "release";
      } else if (state.code === "fault") {
        step = faultStep(state, opts);
      } else {
        const queued = mailbox.shift();
        if (queued === undefined) return "release";
        step = { message: queued, state };
      }

      const { message, next } = transition(step, log);
      const unchangedRelease =
        message.code === "release" &&
        next.code === state.code &&
        (next.errors?.length ?? 0) === (state.errors?.length ?? 0);
      if (!unchangedRelease) {
        if (!claimStillHeld(ctx)) {
          log.warn(`claim no longer vouched for: not storing ${describeState(next)} (on ${describeMessage(message)})`);
          return "release";
        }
        try {
          await store.store(task.id, next, claimOf(ctx));
        } catch (err) {
          if (err instanceof ClaimLostError) throw err;
          throw new StateStoreError("store", task.id, err);
        }
      }
      if (next !== step.state) {
        log.info(`${describeState(state)} → ${describeState(next)} on ${describeMessage(message)}`);
        opts.onState?.(next, new Date());
      }
      state = next;
      if (isTerminal(state.code)) return "done";

      if (!draining && (message.code === "release" || ctx.signal.aborted)) await startDraining();
    }
  } finally {
    listening.abort();
    ctx.signal.removeEventListener("abort", onAbort);
    if (pumpDone) await settleWithin(pumpDone, stopTimeout);
    if (mailbox.size > 0) log.debug(`${mailbox.size} queued message(s) not applied: the task finished first`);
  }
}

function claimOf(ctx: HandlerContext): ClaimRef {
  return { node: ctx.node, token: ctx.token };
}

/** The stop means this node no longer (surely) holds the claim. */
function claimGone(ctx: HandlerContext): boolean {
  if (!claimStillHeld(ctx)) return true;
  const reason: unknown = ctx.signal.reason;
  return (
    ctx.signal.aborted &&
    reason instanceof StopError &&
    (reason.reason === "lost" || reason.reason === "deleted" || reason.reason === "lease")
  );
}

function drainAll(mailbox: Mailbox): Message[] {
  const out: Message[] = [];
  for (let m = mailbox.shift(); m !== undefined; m = mailbox.shift()) out.push(m);
  return out;
}

/**
 * Apply a step's message. An invalid transition becomes an `error` naming it; if that is
 * invalid too, the task is released unchanged (Go's rule; only paused lacks `error`).
 */
function transition(step: Step, log: Logger): { message: Message; next: State } {
  const { state, message } = step;
  const next = applyMessage(state, message);
  if (next !== undefined) return { message, next };
  let reason = `invalid message "${describeMessage(message)}" in state "${describeState(state)}"`;
  if (message.error !== undefined && message.code !== "error") {
    reason += ` (its error: ${typeof message.error === "string" ? message.error : message.error.message})`;
  }
  const asError = errorMessage(reason);
  const faulted = applyMessage(state, asError);
  if (faulted !== undefined) {
    log.warn(`${reason}: treating it as an error`);
    return { message: asError, next: faulted };
  }
  log.warn(`${reason}, and "error" is not allowed there either: releasing the task unchanged`);
  return { message: releaseMessage(), next: state };
}

/** What the current state produces (Go's exec). */
async function execute<P extends TaskProps>(state: State, opts: RunnerOptions<P>, mailbox: Mailbox): Promise<Step> {
  switch (state.code) {
    case "runnable":
      return { message: await runHandler(state, opts, mailbox), state };
    case "paused":
      // Without a deadline take() only resolves with a message.
      return { message: (await mailbox.take()) ?? runMessage(), state };
    case "sleeping": {
      // Wake at the deadline (at once if it passed, or if there is none), unless a command comes first.
      const command = state.until ? await mailbox.take(state.until.getTime()) : undefined;
      return { message: command ?? runMessage(), state };
    }
    case "fault":
      return faultStep(state, opts);
    default:
      // Terminal states never execute: the loop returns before reaching here.
      throw new Error(`state machine bug: executing terminal state "${state.code}"`);
  }
}

/** Fault: the error policy decides, and its trimmed history replaces the state's. */
function faultStep<P extends TaskProps>(state: State, opts: RunnerOptions<P>): Step {
  let decision: ReturnType<ErrorPolicy>;
  try {
    decision = opts.errorPolicy(opts.task as Task, state.errors ?? []);
  } catch (err) {
    opts.ctx.log.error(`error policy threw (${String(err)}); failing the task`);
    return { message: errorMessage(`error policy threw: ${String(err)}`), state };
  }
  const trimmed: State = { ...state, errors: decision.errors };
  const problem = messageProblem(decision.message);
  if (problem !== undefined) {
    opts.ctx.log.error(`error policy returned an invalid message (${problem}); failing the task`);
    return { message: errorMessage(`error policy returned an invalid message: ${problem}`), state: trimmed };
  }
  return { message: decision.message, state: trimmed };
}

/** Runnable: call the handler with a private view of the commands, closed when it returns. */
async function runHandler<P extends TaskProps>(
  state: State,
  opts: RunnerOptions<P>,
  mailbox: Mailbox,
): Promise<Message> {
  const { ctx } = opts;
  const view = mailbox.view();
  // Built explicitly (not spread): ctx may be a class instance whose methods live on its prototype.
  const statefulCtx: StatefulContext = {
    signal: ctx.signal,
    token: ctx.token,
    node: ctx.node,
    log: ctx.log,
    client: ctx.client,
    claimDeadline: () => ctx.claimDeadline(),
    onStop: (listener) => ctx.onStop(listener),
    owned: () => ctx.owned(),
    sleep: (ms) => ctx.sleep(ms),
    checkpoint: (value) => ctx.checkpoint(value),
    get lastCheckpoint() {
      return ctx.lastCheckpoint;
    },
    commands: view.commands,
    state,
  };
  let result: unknown;
  try {
    result = await opts.run(opts.task, statefulCtx);
  } catch (err) {
    view.close();
    if (ctx.signal.aborted && (err === ctx.signal.reason || (err instanceof Error && err.name === "AbortError"))) {
      ctx.log.debug("handler stopped by its abort signal: releasing");
      return releaseMessage();
    }
    ctx.log.warn(`handler threw: ${err instanceof Error ? err.message : String(err)}`);
    return errorMessage(
      err instanceof Error
        ? err
        : `handler threw ${typeof err === "string" ? err : (JSON.stringify(err) ?? String(err))}`,
    );
  }
  // Closed in the same microtask run as the return: see Mailbox for why that is exact.
  view.close();
  const normalized = normalizeHandlerResult(result);
  if ("problem" in normalized) {
    ctx.log.warn(normalized.problem);
    return errorMessage(normalized.problem);
  }
  return normalized.message;
}

/**
 * Feed the task's commands into the mailbox until `signal` aborts. Invalid messages are
 * dropped with a warning (Go's multiplexer does the same); a failing listener is restarted
 * with back-off rather than leaving the task deaf to commands.
 */
async function pumpCommands<P extends TaskProps>(
  opts: RunnerOptions<P>,
  mailbox: Mailbox,
  signal: AbortSignal,
): Promise<void> {
  const log = opts.ctx.log;
  let delay = LISTEN_RETRY_INITIAL;
  while (!signal.aborted) {
    try {
      for await (const message of opts.commands.listen(opts.task.id, signal, claimOf(opts.ctx))) {
        const problem = messageProblem(message);
        if (problem !== undefined) {
          log.warn(`dropping invalid command: ${problem}`);
          continue;
        }
        log.debug(`command received: ${describeMessage(message)}`);
        mailbox.push(message);
        delay = LISTEN_RETRY_INITIAL;
      }
      if (signal.aborted) return;
      log.warn(`command listener ended by itself; restarting in ${delay}ms`);
    } catch (err) {
      if (signal.aborted) return;
      log.warn(
        `command listener failed (${err instanceof Error ? err.message : String(err)}); restarting in ${delay}ms`,
      );
    }
    await abortableSleep(delay, signal);
    delay = Math.min(delay * 2, LISTEN_RETRY_MAX);
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
