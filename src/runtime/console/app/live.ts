/**
 * The node's event stream (`GET /api/events`). EventSource reconnects by itself after a
 * dropped connection; when the node answers with an error (e.g. while it shuts down) the
 * browser gives up, so then we open a new one after a pause. `hello` replaces everything the
 * page knew, so a reconnect (or a restarted node) never leaves stale figures behind.
 */
import type { HelloMessage, SnapshotMessage } from "../types.ts";

export interface LiveHandlers {
  hello(msg: HelloMessage): void;
  snapshot(msg: SnapshotMessage): void;
  connected(up: boolean): void;
}

const REOPEN_MS = 1500;
/** The node sends a snapshot every second; this much silence means the stream is dead. */
const SILENCE_MS = 5000;

export function connectLive(handlers: LiveHandlers): () => void {
  let source: EventSource | undefined;
  let reopen: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let heard = Date.now();

  const open = (): void => {
    if (stopped) return;
    source?.close();
    heard = Date.now();
    const es = new EventSource("/api/events");
    source = es;
    es.addEventListener("message", () => (heard = Date.now()));
    es.addEventListener("hello", (e) => {
      heard = Date.now();
      handlers.connected(true);
      handlers.hello(JSON.parse((e as MessageEvent<string>).data) as HelloMessage);
    });
    es.addEventListener("snapshot", (e) => {
      heard = Date.now();
      handlers.snapshot(JSON.parse((e as MessageEvent<string>).data) as SnapshotMessage);
    });
    es.onerror = () => {
      handlers.connected(false);
      if (es.readyState === EventSource.CLOSED && !stopped) {
        clearTimeout(reopen);
        reopen = setTimeout(open, REOPEN_MS);
      }
    };
  };
  open();
  const watchdog = setInterval(() => {
    if (Date.now() - heard > SILENCE_MS) {
      handlers.connected(false);
      open();
    }
  }, 1000);
  return () => {
    stopped = true;
    clearInterval(watchdog);
    clearTimeout(reopen);
    source?.close();
  };
}
