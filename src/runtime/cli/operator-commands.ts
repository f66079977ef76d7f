/**
 * Operator commands of the `metafora` CLI: submit, delete, tasks, nodes, command, pause,
 * resume, sleep, kill, state. They reach the cluster the config describes (etcd directly, or
 * an embedded node's HTTP API: operator/connect.ts), print tables for people and JSON with
 * --json, and set the exit code of the shared contract (exit-codes.ts): 2 usage, 1 failed,
 * 69 unreachable, 78 config.
 *
 * cli.ts owns the cac instance, the global config flags and `run`/`config`/`version`;
 * it calls registerOperatorCommands and passes how to load the effective config.
 */
import { readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { readFile } from "node:fs/promises";
import process from "node:process";
import type { CAC } from "cac";
import { ConfigError, describeError } from "../../errors.ts";
import { routeTask } from "../../handler.ts";
import type { TaskInfo } from "../../types.ts";
import { createOutput, truncate, type Output, type OutputStream } from "./output.ts";
import type { RuntimeConfig } from "../config/schema.ts";
import { ExitCode } from "./exit-codes.ts";
import { countResults, parseTaskLines } from "../operator/bulk-submit.ts";
import { connectOperator } from "../operator/connect.ts";
import { stateLine } from "../operator/state-view.ts";
import {
  OperatorError,
  type Operator,
  type OperatorErrorKind,
  type TaskMessageName,
  type TaskRow,
} from "../operator/types.ts";
import {
  checkNodeCommand,
  checkProps,
  checkTaskId,
  checkTaskMessage,
  NODE_COMMAND_NAMES,
  parseUntil,
} from "../operator/validate.ts";

/** The STATE column: the state machine's state, else whether a node runs the task. */
function stateCell(t: TaskRow): string {
  if (t.state)
    return (
      stateLine({ code: t.state.code, ...(t.state.until ? { until: t.state.until } : {}) }) +
      (t.state.errors ? ` (${t.state.errors} error${t.state.errors === 1 ? "" : "s"})` : "")
    );
  return t.owner ? "running" : "pending";
}

export interface OperatorCliDeps {
  /** The effective configuration (flags > env > file > defaults), loaded when a command runs. */
  loadConfig(): Promise<RuntimeConfig>;
  /** How to reach the cluster; default connectOperator (tests inject their own). */
  connect?(config: RuntimeConfig): Promise<Operator>;
  stdout?: OutputStream;
  stderr?: OutputStream;
  /** Receives the exit code when a command finishes (default: sets process.exitCode). */
  setExitCode?(code: number): void;
  /** Clock for "sleep <id> 10m" (default Date.now). */
  now?(): number;
  /** Standard input, all of it, for `--props -` (default: reads fd 0). */
  readStdin?(): string;
}

/**
 * The text of --props: inline JSON, `@path` (a file: big props do not fit the OS argument
 * limit) or `-` (standard input).
 */
function readPropsArg(arg: string, readStdin: () => string, usage: (message: string) => never): string {
  if (arg === "-") {
    try {
      return readStdin();
    } catch (err) {
      return usage(`--props - reads the props from standard input, which could not be read: ${(err as Error).message}`);
    }
  }
  if (!arg.startsWith("@")) return arg;
  const path = arg.slice(1);
  if (path === "") usage("--props @FILE needs a file name after the @");
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    return usage(
      `--props @${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a file holding a JSON object`,
    );
  }
}

/** Exit code for a failed operation, by what went wrong. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return ExitCode.config;
  if (err instanceof OperatorError) return EXIT_BY_KIND[err.kind];
  return ExitCode.failed;
}

const EXIT_BY_KIND: Record<OperatorErrorKind, number> = {
  invalid: ExitCode.usage,
  unauthorized: ExitCode.failed,
  forbidden: ExitCode.failed,
  "not-found": ExitCode.failed,
  conflict: ExitCode.failed,
  unsupported: ExitCode.failed,
  unavailable: ExitCode.unavailable,
  failed: ExitCode.failed,
};

interface CommonFlags {
  json?: boolean;
}

export function registerOperatorCommands(cli: CAC, deps: OperatorCliDeps): void {
  const stdout: OutputStream = deps.stdout ?? process.stdout;
  const stderr: OutputStream = deps.stderr ?? process.stderr;
  const setExitCode = deps.setExitCode ?? ((code: number) => (process.exitCode = code));
  const now = deps.now ?? Date.now;
  const connect = deps.connect ?? connectOperator;
  const readStdin = deps.readStdin ?? (() => readFileSync(0, "utf8"));

  /**
   * Option values exactly as typed: cac (mri) turns numeric-looking values into numbers, so
   * `--task 007` would arrive as 7. Positional arguments are not affected.
   */
  const raw = (name: string, parsed: unknown): string | undefined => {
    const argv = cli.rawArgs ?? [];
    let value: string | undefined;
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      if (arg === "--") break;
      if (arg === `--${name}`) value = argv[i + 1];
      else if (arg.startsWith(`--${name}=`)) value = arg.slice(name.length + 3);
    }
    if (value !== undefined) return value;
    return parsed === undefined || parsed === true ? undefined : String(parsed);
  };

  /**
   * A positional argument exactly as typed. mri turns a value after a boolean flag into a
   * number (`submit --json 007` gives 7), so a number is traced back to its argv token.
   */
  const typed = (value: unknown): string => {
    if (typeof value !== "number") return String(value);
    const token = (cli.rawArgs ?? []).find((a) => !a.startsWith("-") && a.trim() !== "" && Number(a) === value);
    return token ?? String(value);
  };

  /** Run one command: connect, act, print; every failure becomes a message and an exit code. */
  const act = async (flags: CommonFlags, fn: (op: Operator, out: Output) => Promise<void>): Promise<void> => {
    const out = createOutput({ json: flags.json === true, stdout, stderr });
    let op: Operator | undefined;
    try {
      const config = await deps.loadConfig();
      op = await connect(config);
      await fn(op, out);
      setExitCode(ExitCode.ok);
    } catch (err) {
      const code = exitCodeFor(err);
      const message = err instanceof OperatorError || err instanceof ConfigError ? err.message : describeError(err);
      if (out.json) stderr.write(`${JSON.stringify({ error: message })}\n`);
      else out.error(`error: ${message}`);
      setExitCode(code);
    } finally {
      await op?.close().catch(() => undefined);
    }
  };

  /** Usage errors found before connecting (bad --props, bad duration) exit 2 without a round trip. */
  const usage = (message: string): never => {
    throw new OperatorError("invalid", message);
  };

  cli
    .command(
      "submit [id]",
      "Submit a task (routed to the handler named by --handler, else by the id before the first ':'), or many with --file",
    )
    .option(
      "--props <json>",
      'Task props as a JSON object, e.g. \'{"url":"https://example.com"}\'; @FILE reads a file, - reads stdin',
    )
    .option("--handler <name>", "Handler to route the task to (stored as props.handler)")
    .option(
      "--file <path>",
      'Submit every task in a JSON Lines file (one {"id", "props"?, "handler"?} per line; - for stdin); ids that exist are reported, not errors',
    )
    .option("--json", "Print the result as JSON")
    .example("metafora submit crawl:example.com --props '{\"depth\":2}'")
    .example("metafora submit import:big --props @props.json     # or: ... --props - < props.json")
    .example("metafora submit --file tasks.jsonl")
    .action((id: string | undefined, flags: CommonFlags & { props?: unknown; handler?: unknown; file?: unknown }) =>
      act(flags, async (op, out) => {
        const file = raw("file", flags.file);
        if (file !== undefined) {
          if (id !== undefined) usage("give either a task id or --file, not both");
          if (raw("props", flags.props) !== undefined || raw("handler", flags.handler) !== undefined) {
            usage("--props and --handler apply to one task; with --file, put them on each line");
          }
          const tasks = parseTaskLines(await readTasksFile(file), file === "-" ? "stdin" : file);
          const results = [];
          for (let i = 0; i < tasks.length; i += FILE_SUBMIT_CHUNK)
            results.push(...(await op.submitTasks(tasks.slice(i, i + FILE_SUBMIT_CHUNK))));
          const { created, exists } = countResults(results);
          if (out.json) out.printJson({ created, exists, results });
          else {
            const taken = results.filter((r) => r.result === "exists").map((r) => r.id);
            const shown = taken.slice(0, 10).join(", ") + (taken.length > 10 ? `, … (${taken.length - 10} more)` : "");
            out.printLine(
              `submitted ${created} task(s)${exists > 0 ? `; ${exists} already existed and were left unchanged: ${shown}` : ""}`,
            );
          }
          return;
        }
        if (id === undefined) usage("submit needs a task id, or --file with one task per line");
        const taskId = checkTaskId(typed(id));
        const propsArg = raw("props", flags.props);
        const propsText = propsArg === undefined ? undefined : readPropsArg(propsArg, readStdin, usage);
        let props: unknown;
        if (propsText !== undefined) {
          const from =
            propsArg === "-" ? " (from stdin)" : propsArg!.startsWith("@") ? ` (from ${propsArg!.slice(1)})` : "";
          try {
            props = JSON.parse(propsText);
          } catch (err) {
            usage(`--props${from} must be a JSON object such as '{"url":"…"}': ${(err as Error).message}`);
          }
        }
        const handlerText = raw("handler", flags.handler);
        const finalProps = checkProps(props, handlerText, "--props");
        const { warning } = await op.submitTask(taskId, finalProps);
        const handler = routeTask({ id: taskId, props: finalProps ?? {} });
        if (out.json) out.printJson({ id: taskId, props: finalProps ?? {}, handler, ...(warning ? { warning } : {}) });
        else out.printLine(`submitted task ${taskId} (handler ${handler})`);
        if (warning) stderr.write(`warning: ${warning}\n`);
      }),
    );

  cli
    .command("delete <id>", "Delete a task; its running instance, if any, is stopped")
    .option("--json", "Print the result as JSON")
    .action((id: string, flags: CommonFlags) =>
      act(flags, async (op, out) => {
        const taskId = checkTaskId(typed(id));
        await op.deleteTask(taskId);
        if (out.json) out.printJson({ id: taskId, deleted: true });
        else out.printLine(`deleted task ${taskId}`);
      }),
    );

  cli
    .command(
      "tasks",
      "List every task with its owner, token, handler, state, attempts/errors, last error and next retry",
    )
    .option("--json", "Print the tasks as JSON (every field)")
    .action((flags: CommonFlags) =>
      act(flags, async (op, out) => {
        const tasks = await op.tasks();
        if (out.json) return out.printJson(tasks);
        out.printTable(
          ["ID", "OWNER", "TOKEN", "HANDLER", "STATE", "ATTEMPTS/ERRORS", "LAST ERROR", "NEXT RETRY", "PROPS"],
          tasks.map((t) => [
            t.id,
            t.owner ?? "-",
            t.token === undefined ? "-" : String(t.token),
            t.handler ?? routeTask(t),
            stateCell(t),
            t.attempts === undefined ? "-" : `${t.attempts}/${t.errors ?? 0}`,
            t.lastError ? truncate(t.lastError.message, 40) : "-",
            t.nextRetry ?? "-",
            t.propsError ? "(unreadable, see below)" : truncate(JSON.stringify(t.props ?? {}), 40),
          ]),
          "no tasks",
        );
        printTaskNotes(out, tasks);
      }),
    );

  cli
    .command(
      "task <id>",
      "Show one task: owner, token, state, attempts, last error, next retry, checkpoint and its history",
    )
    .option("--json", "Print the task and its history as JSON")
    .action((id: string, flags: CommonFlags) =>
      act(flags, async (op, out) => {
        const detail = await op.task(checkTaskId(typed(id)));
        if (out.json) return out.printJson(detail);
        const t = detail.task;
        const rows: string[][] = [
          ["task", t.id],
          ["handler", t.handler],
          ["owner", t.owner ?? "-"],
          ["token", t.token === undefined ? "-" : String(t.token)],
          ["state", stateCell(t)],
        ];
        if (t.attempts !== undefined) rows.push(["attempts", String(t.attempts)], ["errors", String(t.errors ?? 0)]);
        if (t.lastError) rows.push(["last error", `${t.lastError.at} ${truncate(t.lastError.message, 120)}`]);
        if (t.nextRetry) rows.push(["next retry", t.nextRetry]);
        if (t.waiting) rows.push(["waiting", t.waiting]);
        if (t.checkpoint) rows.push(["checkpoint", `${t.checkpoint.bytes} bytes at ${t.checkpoint.at}`]);
        rows.push(["props", truncate(JSON.stringify(t.props ?? {}), 120)]);
        out.printTable(["FIELD", "VALUE"], rows);
        out.printLine("");
        if (detail.historyNote) out.printLine(`history: ${detail.historyNote}`);
        out.printTable(
          ["AT", "EVENT", "NODE", "TOKEN", "DETAIL"],
          detail.history.map((e) => [
            e.at,
            e.kind,
            e.node ?? "-",
            e.token === undefined ? "-" : String(e.token),
            truncate(e.message ?? e.reason ?? "", 80),
          ]),
          "no history",
        );
      }),
    );

  cli
    .command("nodes", "List live nodes and how many tasks each runs")
    .option("--json", "Print the nodes as JSON")
    .action((flags: CommonFlags) =>
      act(flags, async (op, out) => {
        const nodes = await op.nodes();
        if (out.json) return out.printJson(nodes);
        out.printTable(
          ["NODE", "TASKS"],
          nodes.map((n) => [n.name, String(n.tasks)]),
          "no live nodes",
        );
      }),
    );

  cli
    .command(
      "command <node> <command>",
      `Send a node command: ${NODE_COMMAND_NAMES.join(", ")} (stop-task needs --task)`,
    )
    .option("--task <id>", "Task to stop (stop-task only)")
    .option("--json", "Print the result as JSON")
    .example("metafora command node-a freeze")
    .example("metafora command node-a stop-task --task crawl:example.com")
    .action((node: string, command: string, flags: CommonFlags & { task?: unknown }) =>
      act(flags, async (op, out) => {
        const name = typed(command);
        const task = raw("task", flags.task);
        const isStop = name === "stop-task" || name === "stop_task";
        if (!isStop && !(NODE_COMMAND_NAMES as readonly string[]).includes(name)) {
          usage(`command must be one of ${NODE_COMMAND_NAMES.join(", ")}, got ${JSON.stringify(name)}`);
        }
        if (task !== undefined && !isStop) usage(`--task is only used with stop-task`);
        if (isStop && task === undefined) usage(`stop-task needs --task <id>: the task to stop`);
        const cmd = checkNodeCommand(name, task === undefined ? undefined : { task });
        const nodeName = typed(node);
        await op.nodeCommand(nodeName, cmd);
        if (out.json) out.printJson({ node: nodeName, ...cmd });
        else out.printLine(`sent ${name}${task !== undefined ? ` ${task}` : ""} to node ${nodeName}`);
      }),
    );

  const taskMessage = (name: TaskMessageName, description: string): void => {
    cli
      .command(`${name} <id>`, description)
      .option("--json", "Print the result as JSON")
      .action((id: string, flags: CommonFlags) =>
        act(flags, async (op, out) => {
          const taskId = checkTaskId(typed(id));
          await op.taskCommand(taskId, checkTaskMessage(name, undefined));
          if (out.json) out.printJson({ id: taskId, message: name });
          else out.printLine(`sent ${name} to task ${taskId}`);
        }),
      );
  };
  taskMessage("pause", "Pause a stateful task (it stops running until resumed)");
  taskMessage("resume", "Resume a paused or sleeping stateful task");
  taskMessage("kill", "Kill a stateful task: it stops for good (state killed)");

  cli
    .command(
      "sleep <id> <until>",
      "Put a stateful task to sleep until an RFC 3339 time or for a duration (e.g. 10m, 1h30m)",
    )
    .option("--json", "Print the result as JSON")
    .example("metafora sleep report:daily 2h")
    .example("metafora sleep report:daily 2030-01-02T15:04:05Z")
    .action((id: string, until: string, flags: CommonFlags) =>
      act(flags, async (op, out) => {
        const taskId = checkTaskId(typed(id));
        const when = parseUntil(typed(until), now());
        await op.taskCommand(taskId, { message: "sleep", until: when });
        if (out.json) out.printJson({ id: taskId, message: "sleep", until: when.toISOString() });
        else out.printLine(`sent sleep until ${when.toISOString()} to task ${taskId}`);
      }),
    );

  cli
    .command(
      "state <id> [reset-id]",
      "Show a stateful task's state-machine state and error history; `state reset <id>` clears it",
    )
    .option("--json", "Print the state as JSON")
    .example("metafora state batch:nightly")
    .example("metafora state reset batch:nightly   # forget a finished state, so the id can run again")
    .action((first: string, second: string | undefined, flags: CommonFlags) =>
      act(flags, async (op, out) => {
        if (second !== undefined) {
          if (typed(first) !== "reset")
            usage(
              `state takes one task id, or \`state reset <id>\`; got ${JSON.stringify(typed(first))} ${JSON.stringify(typed(second))}`,
            );
          const taskId = checkTaskId(typed(second));
          const reset = await op.resetState(taskId);
          if (out.json) out.printJson({ id: taskId, reset });
          else
            out.printLine(
              reset
                ? `reset the state of task ${taskId}: it starts as runnable`
                : `task ${taskId} had no stored state; nothing to reset`,
            );
          return;
        }
        const view = await op.taskState(checkTaskId(typed(first)));
        if (out.json) return out.printJson(view);
        if (!view.state) {
          out.printLine(`task ${view.id} has no state: it has not run as a stateful task`);
          return;
        }
        const rows: string[][] = [
          ["task", view.id],
          ["state", stateLine(view.state)],
        ];
        if (view.state.until) rows.push(["until", view.state.until]);
        if (view.since) rows.push(["since", view.since]);
        out.printTable(["FIELD", "VALUE"], rows);
        if (view.state.errors?.length) {
          out.printLine("");
          out.printTable(
            ["ERROR AT", "ERROR"],
            view.state.errors.map((e) => [e.timestamp, truncate(e.error, 120)]),
          );
        }
      }),
    );
}

/** Under the tasks table: why each waiting task waits, and which stored values are unreadable. */
function printTaskNotes(out: Output, tasks: readonly (TaskInfo & { waiting?: string })[]): void {
  const notes: string[] = [];
  for (const t of tasks) {
    if (t.waiting) notes.push(`  ${t.id}: waiting: ${t.waiting}`);
    if (t.propsError) notes.push(`  ${t.id}: ${t.propsError}`);
  }
  if (notes.length === 0) return;
  out.printLine("");
  for (const n of notes) out.printLine(n);
}

/** Tasks per submitTasks call when submitting a file (results stream back chunk by chunk). */
const FILE_SUBMIT_CHUNK = 10_000;

/** The text of a tasks file, or of stdin for "-"; a file that cannot be read is a usage error. */
async function readTasksFile(path: string): Promise<string> {
  try {
    if (path !== "-") return await readFile(path, "utf8");
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks).toString("utf8");
  } catch (err) {
    throw new OperatorError("invalid", `cannot read tasks file ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}
