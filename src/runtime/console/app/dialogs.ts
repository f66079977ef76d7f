/** Confirmation, token and submit dialogs: every action passes through one of them. */
import { useState } from "preact/hooks";
import { html } from "./html.ts";

export function ConfirmDialog({
  title,
  detail,
  onConfirm,
  onCancel,
}: {
  title: string;
  detail: string;
  onConfirm(): void;
  onCancel(): void;
}) {
  return html`<div class="backdrop" onClick=${(e: Event) => e.target === e.currentTarget && onCancel()}>
    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="confirm-title" data-testid="confirm-dialog">
      <h2 id="confirm-title">${title}</h2>
      <p>${detail}</p>
      <div class="buttons">
        <button type="button" onClick=${onCancel}>Cancel</button>
        <button type="button" class="primary" autofocus onClick=${onConfirm}>Confirm</button>
      </div>
    </div>
  </div>`;
}

export function TokenDialog({
  reason,
  onSave,
  onCancel,
}: {
  reason: string;
  onSave(token: string): void;
  onCancel(): void;
}) {
  const [token, setToken] = useState("");
  const submit = (e: Event): void => {
    e.preventDefault();
    if (token.trim()) onSave(token.trim());
  };
  return html`<div class="backdrop">
    <form class="dialog" role="dialog" aria-modal="true" aria-labelledby="token-title" data-testid="token-dialog" onSubmit=${submit}>
      <h2 id="token-title">Token needed</h2>
      <p class="refused">${reason}</p>
      <p>This node needs its <code>http.token</code> for changes. It is kept in this tab only (sessionStorage) and sent as a bearer token.</p>
      <label>Token <input type="password" name="token" autocomplete="off" value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} autofocus /></label>
      <div class="buttons">
        <button type="button" onClick=${onCancel}>Cancel</button>
        <button type="submit" class="primary">Use token and retry</button>
      </div>
    </form>
  </div>`;
}

export interface SubmitValues {
  id: string;
  handler?: string;
  props?: Record<string, unknown>;
}

export function SubmitDialog({
  handlers,
  onSubmit,
  onCancel,
}: {
  handlers: readonly string[];
  onSubmit(v: SubmitValues): void;
  onCancel(): void;
}) {
  const [id, setId] = useState("");
  const [handler, setHandler] = useState("");
  const [props, setProps] = useState("");
  const [error, setError] = useState("");
  const submit = (e: Event): void => {
    e.preventDefault();
    if (!id.trim()) return setError("a task id is needed");
    let parsed: Record<string, unknown> | undefined;
    if (props.trim()) {
      try {
        const v: unknown = JSON.parse(props);
        if (v === null || typeof v !== "object" || Array.isArray(v))
          return setError('props must be a JSON object, e.g. {"n": 1}');
        parsed = v as Record<string, unknown>;
      } catch (err) {
        return setError(`props are not valid JSON: ${(err as Error).message}`);
      }
    }
    onSubmit({
      id: id.trim(),
      ...(handler.trim() ? { handler: handler.trim() } : {}),
      ...(parsed ? { props: parsed } : {}),
    });
  };
  const value = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLInputElement).value);
  return html`<div class="backdrop">
    <form class="dialog" role="dialog" aria-modal="true" aria-labelledby="submit-title" data-testid="submit-dialog" onSubmit=${submit}>
      <h2 id="submit-title">Submit a task</h2>
      <label>Id <input name="id" value=${id} onInput=${value(setId)} placeholder="worker:nightly" autofocus /></label>
      <label>Handler <input name="handler" list="handler-names" value=${handler} onInput=${value(setHandler)} placeholder="from the id when empty" /></label>
      <datalist id="handler-names">${handlers.map((h) => html`<option value=${h} />`)}</datalist>
      <label>Props (JSON object) <textarea name="props" rows="4" value=${props} onInput=${value(setProps)} placeholder='{"depth": 2}'></textarea></label>
      ${error ? html`<p class="refused">${error}</p>` : null}
      <div class="buttons">
        <button type="button" onClick=${onCancel}>Cancel</button>
        <button type="submit" class="primary">Next</button>
      </div>
    </form>
  </div>`;
}
