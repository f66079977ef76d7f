/**
 * Pictures: tasks per node over the last minutes (uPlot: small, fast, canvas, no
 * dependencies), and a strip of the node's recent events by kind (plain SVG).
 */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { CountSample, TimelineEvent } from "../types.ts";
import { html } from "./html.ts";

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];

export function TasksPerNodeChart({ samples }: { samples: readonly CountSample[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<{ u: uPlot; key: string } | undefined>(undefined);
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.counts)))].sort();
  const key = names.join("\u0000");

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      samples.map((s) => s.at / 1000),
      ...names.map((n) => samples.map((s) => s.counts[n] ?? null)),
    ];
    if (plot.current && plot.current.key === key) {
      plot.current.u.setData(data);
      return;
    }
    plot.current?.u.destroy();
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 180,
      legend: { show: true },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { label: "tasks", size: 50 }],
      series: [{}, ...names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 2 }))],
    };
    plot.current = { u: new uPlot(opts, data, el), key };
  });

  useEffect(() => {
    const resize = (): void => {
      const el = box.current;
      if (el && plot.current) plot.current.u.setSize({ width: Math.max(280, el.clientWidth), height: 180 });
    };
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current?.u.destroy();
      plot.current = undefined;
    };
  }, []);

  return html`<div class="chart" data-testid="tasks-chart" ref=${box}>${samples.length < 2 ? html`<p class="muted">collecting samples…</p>` : null}</div>`;
}

const KIND_COLORS: Record<string, string> = {
  claimed: "#2563eb",
  failover: "#d97706",
  released: "#6b7280",
  done: "#16a34a",
  lost: "#dc2626",
  error: "#dc2626",
  suspended: "#9333ea",
  resumed: "#9333ea",
  command: "#0891b2",
};
const ROWS = ["claimed", "failover", "released", "done", "lost", "error", "command"];

/** Events of the last `spanMs` as ticks on one row per kind. */
export function TimelineStrip({
  events,
  now,
  spanMs = 10 * 60_000,
}: {
  events: readonly TimelineEvent[];
  now: number;
  spanMs?: number;
}) {
  const width = 520;
  const rowH = 14;
  const left = 56;
  const x = (at: string): number => left + ((new Date(at).getTime() - (now - spanMs)) / spanMs) * (width - left);
  const visible = events.filter((e) => new Date(e.at).getTime() >= now - spanMs);
  return html`<svg class="strip" data-testid="timeline-strip" viewBox=${`0 0 ${width} ${ROWS.length * rowH + 14}`} role="img" aria-label="events over the last ten minutes">
    ${ROWS.map(
      (k, i) => html`<g key=${k}>
        <text x="0" y=${i * rowH + 11} class="strip-label">${k}</text>
        <line x1=${left} x2=${width} y1=${i * rowH + 7} y2=${i * rowH + 7} class="strip-rule" />
      </g>`,
    )}
    ${visible.map((e) => {
      const row = ROWS.indexOf(e.kind === "suspended" || e.kind === "resumed" ? "command" : e.kind);
      return html`<rect key=${e.seq} x=${x(e.at) - 1} y=${Math.max(0, row) * rowH + 1} width="3" height=${rowH - 2} fill=${KIND_COLORS[e.kind] ?? "#000"}><title>${`${e.kind} ${e.task ?? ""} ${e.reason ?? ""}`}</title></rect>`;
    })}
    <text x=${left} y=${ROWS.length * rowH + 12} class="strip-label">−10 min</text>
    <text x=${width - 22} y=${ROWS.length * rowH + 12} class="strip-label">now</text>
  </svg>`;
}

export function kindColor(kind: string): string {
  return KIND_COLORS[kind] ?? "#000";
}
