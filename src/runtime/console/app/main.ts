/**
 * The operator console: one page, rendered by Preact from htm templates, fed by the node's
 * event stream (live figures, timeline) and its JSON API (task pages, details, actions).
 */
import { render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { CountSample, HelloMessage, SnapshotMessage, TimelineEvent } from "../types.ts";
import { ApiError, api, enc, storeToken } from "./api.ts";
import { TasksPerNodeChart, TimelineStrip, kindColor } from "./charts.ts";
import { ConfirmDialog, SubmitDialog, TokenDialog, type SubmitValues } from "./dialogs.ts";
import { TaskDetail, type TaskAction } from "./detail.ts";
import { time } from "./format.ts";
import { html } from "./html.ts";
import { connectLive } from "./live.ts";
import type { Filters, HistoryEntry, TaskPage, TaskRow } from "./model.ts";
import { NodesPanel, type NodeAction } from "./nodes.ts";
import { PAGE_SIZE, TasksPanel } from "./tasks.ts";

const MAX_EVENTS = 500;
const MAX_SAMPLES = 300;
/** Task pages are refetched on every change the node reports, and at least this often. */
const REFRESH_MS = 3000;

type Dialog =
  | { kind: "confirm"; title: string; detail: string; run(): Promise<string> }
  | { kind: "token"; reason: string; retry(): Promise<string> }
  | { kind: "submit" };

interface Notice {
  ok: boolean;
  text: string;
}

function App() {
  const [live, setLive] = useState<HelloMessage | undefined>(undefined);
  const [connected, setConnected] = useState(false);
  const [samples, setSamples] = useState<CountSample[]>([]);
  const [events, setEvents] = useState<TimelineEvent[]>([]);
  const [filters, setFilters] = useState<Filters>({ state: "", handler: "", node: "", q: "" });
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<TaskPage | undefined>(undefined);
  const [listError, setListError] = useState<string | undefined>(undefined);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [detail, setDetail] = useState<{ row?: TaskRow; history?: HistoryEntry[]; note?: string }>({});
  const [dialog, setDialog] = useState<Dialog | undefined>(undefined);
  const [notice, setNotice] = useState<Notice | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const listSeq = useRef(0);

  const refresh = useCallback(() => setTick((t) => t + 1), []);

  useEffect(
    () =>
      connectLive({
        connected: setConnected,
        hello(msg) {
          setLive(msg);
          setSamples([...msg.history]);
          setEvents([...msg.events]);
          refresh();
        },
        snapshot(msg: SnapshotMessage) {
          setLive((prev) => {
            const changed =
              !prev ||
              prev.changes !== msg.changes ||
              prev.unclaimed !== msg.unclaimed ||
              countsKey(prev) !== countsKey(msg);
            if (changed) refresh();
            return prev ? { ...prev, ...msg, history: prev.history, events: prev.events } : undefined;
          });
          if (msg.sample) setSamples((s) => [...s, msg.sample!].slice(-MAX_SAMPLES));
          if (msg.events.length) setEvents((e) => [...e, ...msg.events].slice(-MAX_EVENTS));
        },
      }),
    [],
  );

  useEffect(() => {
    // A hidden tab does not poll: each refetch costs the node a listing of every task.
    const t = setInterval(() => document.hidden || refresh(), REFRESH_MS);
    return () => clearInterval(t);
  }, []);

  // The current page of tasks, filtered on the server.
  useEffect(() => {
    const seq = ++listSeq.current;
    const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE_SIZE) });
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    api<TaskPage>("GET", `/api/tasks?${params}`)
      .then((p) => {
        if (seq !== listSeq.current) return;
        setPage(p);
        setListError(undefined);
        if (p.total > 0 && offset >= p.total) setOffset(Math.max(0, Math.floor((p.total - 1) / PAGE_SIZE) * PAGE_SIZE));
      })
      .catch(
        (err: unknown) => seq === listSeq.current && setListError(err instanceof Error ? err.message : String(err)),
      );
  }, [filters, offset, tick]);

  // The selected task: its row (contract: GET /api/tasks/:id with history), else the list row plus its state.
  useEffect(() => {
    if (!selected) return;
    let stale = false;
    const load = async (): Promise<void> => {
      try {
        const d = await api<{ task: TaskRow; history: HistoryEntry[] }>("GET", `/api/tasks/${enc(selected)}`);
        if (!stale) setDetail({ row: d.task, history: d.history });
        return;
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 405)) {
          if (!stale) setDetail((d) => ({ ...d, note: `could not load the task: ${(err as Error).message}` }));
          return;
        }
      }
      const row =
        page?.tasks.find((t) => t.id === selected) ??
        (await api<TaskPage>("GET", `/api/tasks?q=${enc(selected)}&limit=100`).catch(() => undefined))?.tasks.find(
          (t) => t.id === selected,
        );
      let merged = row;
      try {
        const s = await api<{ state?: { code: string; until?: string; errors?: unknown[] }; since?: string }>(
          "GET",
          `/api/tasks/${enc(selected)}/state`,
        );
        if (row && s.state)
          merged = {
            ...row,
            state: {
              code: s.state.code,
              ...(s.state.until ? { until: s.state.until } : {}),
              ...(s.state.errors?.length ? { errors: s.state.errors.length } : {}),
            },
            ...(s.since ? { since: s.since } : {}),
          };
      } catch {
        // no state: the row as listed
      }
      if (!stale) setDetail({ ...(merged ? { row: merged } : {}), note: "This node keeps no per-task history." });
    };
    void load();
    return () => {
      stale = true;
    };
  }, [selected, tick]);

  const perform = (run: () => Promise<string>): void => {
    run()
      .then((text) => {
        setNotice({ ok: true, text });
        refresh();
      })
      .catch((err: unknown) => {
        const status = err instanceof ApiError ? err.status : 0;
        const message = err instanceof Error ? err.message : String(err);
        setNotice({ ok: false, text: `Refused${status ? ` (HTTP ${status})` : ""}: ${message}` });
        if (status === 401) {
          storeToken(undefined);
          setDialog({ kind: "token", reason: message, retry: run });
        }
      });
  };

  const confirm = (title: string, detail: string, run: () => Promise<string>): void =>
    setDialog({ kind: "confirm", title, detail, run });

  const taskAction = (id: string, action: TaskAction, arg?: string): void => {
    const row = detail.row ?? page?.tasks.find((t) => t.id === id);
    const command =
      (message: string, extra: Record<string, string> = {}) =>
      async () => {
        await api("POST", `/api/tasks/${enc(id)}/commands`, { message, ...extra });
        return `${message} sent to ${id}`;
      };
    switch (action) {
      case "pause":
        return confirm(
          "Pause task?",
          `Send "pause" to ${id}: its handler stops working until resumed.`,
          command("pause"),
        );
      case "resume":
        return confirm("Resume task?", `Send "resume" to ${id}.`, command("resume"));
      case "sleep":
        return confirm(
          "Put task to sleep?",
          `Send "sleep" to ${id} until ${arg ?? "?"} from now.`,
          command("sleep", { until: arg ?? "" }),
        );
      case "kill":
        return confirm("Kill task?", `Send "kill" to ${id}: it ends for good in state killed.`, command("kill"));
      case "reset":
        return confirm(
          "Reset state?",
          `Forget the stored state-machine state of ${id}: it starts again as runnable.`,
          async () => {
            await api("DELETE", `/api/tasks/${enc(id)}/state`);
            return `state of ${id} reset`;
          },
        );
      case "stop": {
        const owner = row?.owner;
        if (!owner) return setNotice({ ok: false, text: `${id} is not running on any node` });
        return confirm(
          "Stop task?",
          `Ask node ${owner} to stop ${id} (stop_task): it is released and may be claimed again.`,
          async () => {
            await api("POST", `/api/nodes/${enc(owner)}/commands`, { command: "stop_task", parameters: { task: id } });
            return `stop_task ${id} sent to ${owner}`;
          },
        );
      }
      case "delete":
        return confirm("Delete task?", `Delete ${id} from the cluster; a running instance is stopped.`, async () => {
          await api("DELETE", `/api/tasks/${enc(id)}`);
          setSelected(undefined);
          return `${id} deleted`;
        });
    }
  };

  const nodeAction = (node: string, action: NodeAction): void =>
    confirm(`${action[0]!.toUpperCase()}${action.slice(1)} node?`, `Send "${action}" to node ${node}.`, async () => {
      await api("POST", `/api/nodes/${enc(node)}/commands`, { command: action });
      return `${action} sent to ${node}`;
    });

  const submitTask = (v: SubmitValues): void =>
    confirm(
      "Submit task?",
      `Create task ${v.id}${v.handler ? ` for handler ${v.handler}` : ""}${v.props ? ` with props ${JSON.stringify(v.props)}` : ""}.`,
      async () => {
        await api("POST", "/api/tasks", v);
        return `${v.id} submitted`;
      },
    );

  const self = live?.self;
  const nodeNames = (live?.nodes ?? []).map((n) => n.name);
  return html`<div class="app">
    <header>
      <h1>metafora</h1>
      ${self ? html`<span class="who">node <b data-testid="self-name">${self.name}</b> · ${self.coordinator} · v${self.version}</span>` : null}
      <span class=${`conn ${connected ? "up" : "down"}`} data-testid="connection" role="status">${connected ? "live" : "disconnected, reconnecting…"}</span>
    </header>
    ${notice ? html`<div class=${`notice ${notice.ok ? "ok" : "bad"}`} role="alert" data-testid="notice">${notice.text} <button type="button" class="link" onClick=${() => setNotice(undefined)}>dismiss</button></div>` : null}
    <main>
      <div class="layout">
        ${self ? html`<${NodesPanel} nodes=${live?.nodes ?? []} self=${self} unclaimed=${live?.unclaimed ?? 0} onAction=${nodeAction} />` : html`<section class="panel"><p class="muted">Waiting for the node…</p></section>`}
        <section class="panel" aria-labelledby="chart-title">
          <h2 id="chart-title">Tasks per node</h2>
          <${TasksPerNodeChart} samples=${samples} />
        </section>
        <div class="span2">
          <${TasksPanel} page=${page} error=${listError} filters=${filters} offset=${offset} nodes=${nodeNames} handlers=${self?.handlers ?? []} selected=${selected}
            onFilters=${(f: Filters) => {
              setFilters(f);
              setOffset(0);
            }}
            onOffset=${setOffset} onSelect=${(id: string) => {
              setDetail({});
              setSelected(id);
            }}
            onSubmit=${() => setDialog({ kind: "submit" })} />
        </div>
        ${
          selected
            ? html`<${TaskDetail} id=${selected} row=${detail.row} history=${detail.history} note=${detail.note} onAction=${(a: TaskAction, arg?: string) => taskAction(selected, a, arg)} onClose=${() => setSelected(undefined)} />`
            : html`<section class="panel"><h2>Task</h2><p class="muted">Select a task to see its props, state, history and checkpoint, and to act on it.</p></section>`
        }
        <section class="panel" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline${self ? html` <span class="muted small">(events on ${self.name})</span>` : null}</h2>
          <${TimelineStrip} events=${events} now=${Date.now()} />
          <ol class="events" data-testid="timeline">
            ${[...events]
              .reverse()
              .slice(0, 60)
              .map(
                (e) =>
                  html`<li key=${e.seq} data-kind=${e.kind}><time>${time(e.at)}</time> <b style=${{ color: kindColor(e.kind) }}>${e.kind}</b> ${e.task ?? ""}${e.token !== undefined ? ` (token ${e.token})` : ""}${e.reason ? ` · ${e.reason}` : ""}${e.message ? ` · ${e.message}` : ""}</li>`,
              )}
          </ol>
        </section>
      </div>
    </main>
    ${
      dialog?.kind === "confirm"
        ? html`<${ConfirmDialog} title=${dialog.title} detail=${dialog.detail} onCancel=${() => setDialog(undefined)} onConfirm=${() => {
            setDialog(undefined);
            perform(dialog.run);
          }} />`
        : null
    }
    ${
      dialog?.kind === "token"
        ? html`<${TokenDialog} reason=${dialog.reason} onCancel=${() => setDialog(undefined)} onSave=${(
            token: string,
          ) => {
            storeToken(token);
            setDialog(undefined);
            perform(dialog.retry);
          }} />`
        : null
    }
    ${
      dialog?.kind === "submit"
        ? html`<${SubmitDialog} handlers=${self?.handlers ?? []} onCancel=${() => setDialog(undefined)} onSubmit=${(v: SubmitValues) => submitTask(v)} />`
        : null
    }
  </div>`;
}

function countsKey(m: { nodes: readonly { name: string; tasks: number }[] }): string {
  return m.nodes.map((n) => `${n.name}=${n.tasks}`).join(",");
}

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(html`<${App} />`, root);
}
