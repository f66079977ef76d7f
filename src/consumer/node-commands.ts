/**
 * Node commands (sent to one node through the coordinator): freeze, unfreeze, balance and
 * stop_task, as Go Metafora names them. A malformed or unknown command is logged and dropped;
 * nothing a command says can throw out of here.
 */
import { describeError } from "../errors.ts";
import type { Logger, NodeCommand, StopReason } from "../types.ts";
import type { ConsumerState } from "./events.ts";

/** The parts of a Consumer a node command can reach. */
export interface CommandTarget {
  readonly log: Logger;
  state(): ConsumerState;
  /** Every well-formed command is reported (the "command" event) before it is obeyed. */
  received(cmd: NodeCommand): void;
  freeze(): void;
  unfreeze(): void;
  balanceNow(why: "command"): Promise<string[]>;
  stopTask(id: string, reason: StopReason): boolean;
}

export function dispatchNodeCommand(target: CommandTarget, cmd: NodeCommand): void {
  const log = target.log;
  try {
    if (!cmd || typeof cmd !== "object" || typeof cmd.command !== "string") {
      log.error(`dropping malformed node command ${describeError(cmd)}`);
      return;
    }
    target.received(cmd);
    const state = target.state();
    if (state === "stopping" || state === "stopped") {
      log.debug(`dropping node command "${cmd.command}": shutting down`);
      return;
    }
    switch (cmd.command) {
      case "freeze":
        target.freeze();
        return;
      case "unfreeze":
        target.unfreeze();
        return;
      case "balance":
        void target.balanceNow("command");
        return;
      case "stop_task": {
        const id = cmd.parameters?.task;
        if (typeof id !== "string" || id === "") {
          log.error(
            `stop_task command needs a "task" parameter with a task id, got ${JSON.stringify(cmd.parameters ?? null)}; dropped`,
          );
          return;
        }
        target.stopTask(id, "command");
        return;
      }
      default:
        log.warn(`unknown node command ${JSON.stringify(cmd.command)}; dropped`);
    }
  } catch (err) {
    log.error(`node command failed: ${describeError(err)}`);
  }
}
