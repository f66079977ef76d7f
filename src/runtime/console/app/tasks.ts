/** Tasks: filters (sent to the server), one page of rows, a pager. */
import { ago, bytes, stateCode, stateLabel, time } from "./format.ts";
import { html } from "./html.ts";
import { STATE_FILTERS, type Filters, type TaskPage, type TaskRow } from "./model.ts";

export const PAGE_SIZE = 50;

interface Props {
  page: TaskPage | undefined;
  error: string | undefined;
  filters: Filters;
  offset: number;
  nodes: readonly string[];
  handlers: readonly string[];
  selected: string | undefined;
  onFilters(f: Filters): void;
  onOffset(offset: number): void;
  onSelect(id: string): void;
  onSubmit(): void;
}

export function TasksPanel(p: Props) {
  const set = (key: keyof Filters) => (e: Event) =>
    p.onFilters({ ...p.filters, [key]: (e.target as HTMLInputElement).value });
  const total = p.page?.total ?? 0;
  const last = Math.min(total, p.offset + PAGE_SIZE);
  return html`<section class="panel" aria-labelledby="tasks-title">
    <div class="panel-head">
      <h2 id="tasks-title">Tasks</h2>
      <button type="button" class="primary" onClick=${p.onSubmit}>Submit task</button>
    </div>
    <div class="filters" role="search">
      <input type="search" name="q" placeholder="search ids" aria-label="search ids" value=${p.filters.q} onInput=${set("q")} />
      <select name="state" aria-label="state" value=${p.filters.state} onChange=${set("state")}>
        <option value="">any state</option>
        ${STATE_FILTERS.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
      <select name="handler" aria-label="handler" value=${p.filters.handler} onChange=${set("handler")}>
        <option value="">any handler</option>
        ${p.handlers.map((h) => html`<option value=${h}>${h}</option>`)}
      </select>
      <select name="node" aria-label="node" value=${p.filters.node} onChange=${set("node")}>
        <option value="">any node</option>
        ${p.nodes.map((n) => html`<option value=${n}>${n}</option>`)}
      </select>
    </div>
    ${p.error ? html`<p class="refused" role="alert">Could not list tasks: ${p.error}</p>` : null}
    <div class="scroll">
      <table class="grid" data-testid="tasks-table">
        <thead><tr><th>Id</th><th>Handler</th><th>State</th><th>Node</th><th>Token</th><th>Since</th><th>Attempts</th><th>Last error</th><th>Next retry</th><th>Checkpoint</th></tr></thead>
        <tbody>
          ${(p.page?.tasks ?? []).map((t) => TaskRowView(t, t.id === p.selected, p.onSelect))}
        </tbody>
      </table>
      ${p.page && p.page.tasks.length === 0 ? html`<p class="muted">No task matches.</p>` : null}
    </div>
    <div class="pager">
      <span data-testid="tasks-count">${total === 0 ? "0 tasks" : `${p.offset + 1}–${last} of ${total}`}</span>
      <button type="button" disabled=${p.offset === 0} onClick=${() => p.onOffset(Math.max(0, p.offset - PAGE_SIZE))}>Previous</button>
      <button type="button" disabled=${last >= total} onClick=${() => p.onOffset(p.offset + PAGE_SIZE)}>Next</button>
    </div>
  </section>`;
}

function TaskRowView(t: TaskRow, selected: boolean, onSelect: (id: string) => void) {
  const code = stateCode(t);
  return html`<tr key=${t.id} data-task=${t.id} data-state=${code} class=${selected ? "selected" : ""} onClick=${() => onSelect(t.id)}>
    <td><button type="button" class="link" onClick=${() => onSelect(t.id)}>${t.id}</button></td>
    <td>${t.handler ?? ""}</td>
    <td><span class=${`state state-${code}`} title=${t.waiting ?? ""}>${stateLabel(t)}</span>${t.waiting ? html`<div class="muted small">${t.waiting}</div>` : null}</td>
    <td>${t.owner ?? html`<span class="muted">—</span>`}</td>
    <td class="num">${t.token ?? ""}</td>
    <td title=${t.since ?? ""}>${ago(t.since)}</td>
    <td class="num">${t.attempts ?? ""}</td>
    <td class="err" title=${t.lastError?.message ?? ""}>${t.lastError ? `${ago(t.lastError.at)}: ${t.lastError.message}` : ""}</td>
    <td>${time(t.nextRetry)}</td>
    <td>${t.checkpoint ? `${bytes(t.checkpoint.bytes)}, ${ago(t.checkpoint.at)}` : ""}</td>
  </tr>`;
}
