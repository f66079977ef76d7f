/** How values read on the page. */
import type { TaskRow } from "./model.ts";

/** The state word for a row: a stored state wins; otherwise whether a node runs it. */
export function stateCode(row: TaskRow): string {
  const code = row.state?.code;
  if (code && code !== "runnable") return code;
  if (row.owner) return "running";
  return code === "runnable" ? "runnable" : "unclaimed";
}

export function stateLabel(row: TaskRow): string {
  const code = stateCode(row);
  if (code === "sleeping" && row.state?.until) return `sleeping until ${time(row.state.until)}`;
  if ((code === "fault" || code === "failed") && row.state?.errors)
    return `${code} (${row.state.errors} error${row.state.errors === 1 ? "" : "s"})`;
  return code;
}

export function time(iso: string | number | undefined): string {
  if (iso === undefined) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function ago(iso: string | undefined): string {
  if (!iso) return "";
  const ms = Date.now() - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${Math.max(0, s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function ms(n: number | undefined): string {
  if (n === undefined) return "—";
  return n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n)} ms`;
}

export function seconds(n: number | undefined): string {
  return n === undefined ? "—" : `${Math.round(n / 1000)} s`;
}
