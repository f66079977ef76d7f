/**
 * `GET /api/events`: Server-Sent Events for the console. Each connection first gets `hello`
 * (figures, tasks-per-node history, buffered timeline), then a `snapshot` every second with the
 * events since the previous one. One ticker serves every open stream and runs only while one
 * is open. close() ends every stream at once, so an open browser tab never holds up shutdown.
 * Reads only: like every GET it needs no token (EventSource cannot send one anyway).
 */
import type { ServerResponse } from "node:http";
import type { HttpServices } from "../http/types.ts";
import { clusterFigures } from "./figures.ts";
import type { HelloMessage, SnapshotMessage } from "./types.ts";

const TICK_MS = 1_000;
/** How long the browser waits before reconnecting after the stream drops. */
const RETRY_MS = 1_000;
/** More open streams than this is a leak or abuse; the oldest is dropped. */
const MAX_STREAMS = 64;

interface Stream {
  res: ServerResponse;
  /** Newest timeline seq this stream has been sent. */
  seq: number;
  /** Newest history sample this stream has been sent (epoch ms). */
  sampleAt: number;
}

export class LiveFeed {
  private readonly streams = new Set<Stream>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(private readonly services: HttpServices) {}

  get open(): number {
    return this.streams.size;
  }

  attach(res: ServerResponse): void {
    if (this.closed) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8" }).end("shutting down\n");
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    const timeline = this.services.console?.timeline;
    const history = timeline?.history() ?? [];
    const hello: HelloMessage = { ...clusterFigures(this.services), history, events: timeline?.since(0) ?? [] };
    const stream: Stream = { res, seq: timeline?.changes ?? 0, sampleAt: history[history.length - 1]?.at ?? 0 };
    res.write(`retry: ${RETRY_MS}\n\n`);
    send(res, "hello", hello);
    if (this.streams.size >= MAX_STREAMS) {
      const oldest = this.streams.values().next().value;
      if (oldest) {
        this.drop(oldest);
        oldest.res.end();
      }
    }
    this.streams.add(stream);
    res.on("close", () => this.drop(stream));
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /** End every stream; later connections are refused. */
  close(): void {
    this.closed = true;
    for (const s of [...this.streams]) {
      this.drop(s);
      s.res.end();
    }
  }

  private drop(stream: Stream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    const timeline = this.services.console?.timeline;
    const figures = clusterFigures(this.services);
    const sample = timeline?.latestSample();
    for (const s of this.streams) {
      const msg: SnapshotMessage = {
        ...figures,
        events: timeline?.since(s.seq) ?? [],
        ...(sample && sample.at > s.sampleAt ? { sample } : {}),
      };
      s.seq = timeline?.changes ?? s.seq;
      if (sample) s.sampleAt = Math.max(s.sampleAt, sample.at);
      send(s.res, "snapshot", msg);
    }
  }
}

function send(res: ServerResponse, event: string, data: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
