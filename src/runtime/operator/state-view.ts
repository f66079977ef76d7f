/** State-machine states turned into what operators read: JSON-friendly and as one line of text. */
import type { State } from "../../statemachine/types.ts";
import type { StateView } from "./types.ts";

export function toStateView(state: State): StateView {
  const view: { code: string; until?: string; errors?: Array<{ timestamp: string; error: string }> } = {
    code: state.code,
  };
  if (state.until) view.until = isoOrText(state.until);
  if (state.errors?.length)
    view.errors = state.errors.map((e) => ({ timestamp: isoOrText(e.timestamp), error: e.error }));
  return view;
}

/**
 * One line for operators: "sleeping until 2030-…", "fault (1 error)", "failed (3 errors)",
 * "paused". Unlike the state machine's describeState (Go's State.String(), used in logs), it
 * counts errors of failed states too, in the singular for one, and not at all when there are none.
 */
export function stateLine(state: StateView | State): string {
  const until =
    state.until === undefined ? undefined : typeof state.until === "string" ? state.until : isoOrText(state.until);
  const errors = state.errors?.length ?? 0;
  let text: string = state.code;
  if (until && state.code === "sleeping") text += ` until ${until}`;
  if (errors > 0 && (state.code === "fault" || state.code === "failed"))
    text += ` (${errors} error${errors === 1 ? "" : "s"})`;
  return text;
}

function isoOrText(d: Date): string {
  return Number.isNaN(d.getTime()) ? String(d) : d.toISOString();
}
