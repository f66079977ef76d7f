/**
 * Typing helper for stateful handler modules in the runtime's handler folder:
 *
 *   import { defineStatefulHandler } from "metafora";
 *   export default defineStatefulHandler({ async run(task, ctx) { ...; return "complete"; } });
 *
 * It only adds `stateful: true` and the types; the runtime wraps `run` in the state machine
 * with the coordinator's state store and task commands. Pure types and data: no runtime APIs.
 */
import type { ErrorPolicy, StatefulRun } from "../../statemachine/types.ts";
import type { TaskProps } from "../../types.ts";

export interface StatefulHandlerModule<P extends TaskProps = TaskProps> {
  readonly name?: string;
  readonly stateful: true;
  readonly run: StatefulRun<P>;
  readonly errorPolicy?: ErrorPolicy;
}

export function defineStatefulHandler<P extends TaskProps = TaskProps>(h: {
  name?: string;
  run: StatefulRun<P>;
  errorPolicy?: ErrorPolicy;
}): StatefulHandlerModule<P> {
  return { ...h, stateful: true };
}
