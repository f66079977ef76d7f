/** One task: props, state, history, checkpoint, and the actions an operator can take on it. */
import { useState } from "preact/hooks";
import { bytes, stateCode, stateLabel, time } from "./format.ts";
import { html } from "./html.ts";
import type { HistoryEntry, TaskRow } from "./model.ts";

export type TaskAction = "pause" | "resume" | "sleep" | "kill" | "reset" | "stop" | "delete";

interface Props {
  row: TaskRow | undefined;
  id: string;
  history: HistoryEntry[] | undefined;
  note: string | undefined;
  onAction(action: TaskAction, arg?: string): void;
  onClose(): void;
}

export function TaskDetail({ row, id, history, note, onAction, onClose }: Props) {
  const [sleepFor, setSleepFor] = useState("10m");
  return html`<section class="panel detail" aria-labelledby="detail-title" data-testid="task-detail">
    <div class="panel-head">
      <h2 id="detail-title">Task <code>${id}</code></h2>
      <button type="button" onClick=${onClose} aria-label="close">Close</button>
    </div>
    ${
      row
        ? html`<dl class="facts">
          <dt>State</dt><dd data-testid="detail-state" data-state=${stateCode(row)}>${stateLabel(row)}</dd>
          <dt>Handler</dt><dd>${row.handler ?? ""}</dd>
          <dt>Node</dt><dd>${row.owner ?? "none"}</dd>
          <dt>Fencing token</dt><dd>${row.token ?? "—"}</dd>
          ${row.since ? html`<dt>Since</dt><dd>${time(row.since)}</dd>` : null}
          ${row.attempts !== undefined ? html`<dt>Attempts</dt><dd>${row.attempts}</dd>` : null}
          ${row.waiting ? html`<dt>Waiting</dt><dd>${row.waiting}</dd>` : null}
          ${row.lastError ? html`<dt>Last error</dt><dd class="err">${time(row.lastError.at)}: ${row.lastError.message}</dd>` : null}
          ${row.nextRetry ? html`<dt>Next retry</dt><dd>${time(row.nextRetry)}</dd>` : null}
          <dt>Checkpoint</dt><dd>${row.checkpoint ? `${bytes(row.checkpoint.bytes)} at ${time(row.checkpoint.at)}` : "none"}</dd>
        </dl>
        <h3>Props</h3>
        ${row.propsError ? html`<p class="refused">${row.propsError}</p>` : null}
        <pre data-testid="detail-props">${JSON.stringify(row.props ?? {}, null, 2)}</pre>`
        : html`<p class="muted">This task is not in the list (deleted, or filtered out).</p>`
    }
    <div class="actions wrap">
      <button type="button" onClick=${() => onAction("pause")}>Pause</button>
      <button type="button" onClick=${() => onAction("resume")}>Resume</button>
      <span class="inline">
        <button type="button" onClick=${() => onAction("sleep", sleepFor)}>Sleep</button>
        <input name="sleep-for" aria-label="sleep for" size="6" value=${sleepFor} onInput=${(e: Event) => setSleepFor((e.target as HTMLInputElement).value)} />
      </span>
      <button type="button" onClick=${() => onAction("kill")}>Kill</button>
      <button type="button" onClick=${() => onAction("reset")}>Reset state</button>
      <button type="button" disabled=${!row?.owner} title=${row?.owner ? `stop_task on ${row.owner}` : "not running"} onClick=${() => onAction("stop")}>Stop</button>
      <button type="button" class="danger" onClick=${() => onAction("delete")}>Delete</button>
    </div>
    <h3>History</h3>
    ${note ? html`<p class="muted">${note}</p>` : null}
    ${
      history && history.length > 0
        ? html`<ol class="history" data-testid="detail-history">
          ${[...history].reverse().map((h) => html`<li><time>${time(h.at)}</time> <b>${h.kind}</b>${h.node ? ` on ${h.node}` : ""}${h.token !== undefined ? ` (token ${h.token})` : ""}${h.reason ? `: ${h.reason}` : ""}${h.message ? ` ${h.message}` : ""}</li>`)}
        </ol>`
        : history
          ? html`<p class="muted">No history recorded.</p>`
          : null
    }
  </section>`;
}
