/** Nodes: who is live, how many tasks each owns, and this node's own health figures. */
import type { NodeCount, SelfFigures } from "../types.ts";
import { ms, seconds } from "./format.ts";
import { html } from "./html.ts";

export type NodeAction = "freeze" | "unfreeze" | "balance";

export function NodesPanel({
  nodes,
  self,
  unclaimed,
  onAction,
}: {
  nodes: readonly NodeCount[];
  self: SelfFigures;
  unclaimed: number;
  onAction(node: string, action: NodeAction): void;
}) {
  const owned = nodes.reduce((sum, n) => sum + n.tasks, 0);
  return html`<section class="panel" aria-labelledby="nodes-title">
    <h2 id="nodes-title">Nodes</h2>
    <div class="totals" data-testid="cluster-totals">
      <span><b data-testid="total-nodes">${nodes.length}</b> live node${nodes.length === 1 ? "" : "s"}</span>
      <span><b>${owned}</b> tasks running</span>
      <span><b>${unclaimed}</b> unclaimed</span>
      <span><b>${owned + unclaimed}</b> tasks in all</span>
    </div>
    <div class="scroll"><table class="grid" data-testid="nodes-table">
      <thead><tr><th>Node</th><th>Tasks</th><th>Frozen</th><th>Lease TTL</th><th>Keepalive</th><th>Loop lag</th><th>Version</th></tr></thead>
      <tbody>
        ${nodes.map((n) => {
          const me = n.name === self.name;
          const unknown = html`<span class="muted" title="only the node serving this page reports these">—</span>`;
          return html`<tr key=${n.name} data-node=${n.name}>
            <td>
              ${n.name}${me ? html` <span class="tag">this node</span>` : null}
              <div class="actions node-actions">
                <button type="button" onClick=${() => onAction(n.name, "freeze")}>Freeze</button>
                <button type="button" onClick=${() => onAction(n.name, "unfreeze")}>Unfreeze</button>
                <button type="button" onClick=${() => onAction(n.name, "balance")}>Balance</button>
              </div>
            </td>
            <td class="num" data-testid="node-tasks">${n.tasks}</td>
            <td>${me ? (self.frozen ? html`<span class="state state-paused">frozen</span>` : "no") : unknown}</td>
            <td>${me ? (self.leaseTtlMs === undefined ? "no lease" : seconds(self.leaseTtlMs)) : unknown}</td>
            <td>${me ? ms(self.keepaliveMs) : unknown}</td>
            <td>${me ? ms(self.loopLagMs) : unknown}</td>
            <td>${me ? self.version : unknown}</td>
          </tr>`;
        })}
      </tbody>
    </table></div>
  </section>`;
}
