/**
 * Turns validated handler modules into the Handler map the consumer routes by: plain modules
 * as they are, `stateful: true` modules wrapped in the state machine with the backend's state
 * store and task commands.
 */
import { statefulHandler, type StatefulHandler, type StateSnapshot } from "../../statemachine/stateful.ts";
import type { ErrorPolicy, StatefulRun, StateStore, TaskCommandSource } from "../../statemachine/types.ts";
import type { Handler } from "../../types.ts";
import type { HandlerModule } from "./loader.ts";

export interface BuiltHandlers {
  readonly handlers: Map<string, Handler>;
  readonly names: string[];
  /** State of a running stateful task on this node (any stateful handler). */
  stateOf(taskId: string): StateSnapshot | undefined;
  readonly statefulCount: number;
}

export function buildHandlers(
  modules: readonly HandlerModule[],
  stateful: { stateStore: StateStore; taskCommands: TaskCommandSource },
): BuiltHandlers {
  const handlers = new Map<string, Handler>();
  const machines: StatefulHandler[] = [];
  for (const mod of modules) {
    if (mod.stateful) {
      const machine = statefulHandler({
        name: mod.name,
        run: mod.run as unknown as StatefulRun,
        store: stateful.stateStore,
        commands: stateful.taskCommands,
        ...(mod.errorPolicy ? { errorPolicy: mod.errorPolicy as unknown as ErrorPolicy } : {}),
      });
      machines.push(machine);
      handlers.set(mod.name, machine);
    } else {
      handlers.set(mod.name, { name: mod.name, run: mod.run as unknown as Handler["run"] });
    }
  }
  return {
    handlers,
    names: [...handlers.keys()].sort(),
    statefulCount: machines.length,
    stateOf(taskId) {
      for (const m of machines) {
        const s = m.stateOf(taskId);
        if (s) return s;
      }
      return undefined;
    },
  };
}
