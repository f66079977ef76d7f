/**
 * The watch stream, the listing call and the claim transaction, made on etcd3's own
 * connections (same hosts, TLS, auth token and failover) but encoded and decoded by hand
 * (kv-decode.ts, txn-codec.ts) instead of etcd3's generic protobuf conversion. Every node
 * receives every change of the namespace's tasks and makes every claim through a
 * transaction; that is most of what a node spends its CPU on in a big cluster.
 *
 * etcd3 does not expose its connection pool in its types, so it is looked up at runtime; when
 * it is not there (another etcd3 version) the calls fall back to etcd3's public API and convert
 * its objects, which is slower but the same.
 */
import { Buffer } from "node:buffer";
import {
  EtcdInvalidAuthTokenError,
  castGrpcError,
  type Etcd3,
  type IKeyValue,
  type IRangeRequest,
  type IRequestOp,
  type IWatchRequest,
  type IWatchResponse,
} from "etcd3";
import {
  type DecodedRangeResponse,
  type DecodedWatchResponse,
  decodeRangeResponse,
  decodeWatchResponse,
} from "./kv-decode.ts";
import type { MirrorEvent, MirrorKv } from "./kv-decode.ts";
import { type DecodedTxnResponse, decodeTxnResponse, encodeTxnRequest, type TxnOp, type TxnSpec } from "./txn-codec.ts";

/** The part of a duplex gRPC stream the mirror uses. */
export interface WatchStream {
  on(event: "data", listener: (res: DecodedWatchResponse) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: "end", listener: () => void): this;
  write(req: IWatchRequest): unknown;
  end(): void;
  cancel(): void;
}

type Serialize = (value: unknown) => Buffer;
type Deserialize = (bytes: Buffer) => unknown;

interface GrpcClient {
  makeBidiStreamRequest(
    method: string,
    serialize: Serialize,
    deserialize: Deserialize,
    metadata: unknown,
    options?: object,
  ): WatchStream;
  makeUnaryRequest(
    method: string,
    serialize: Serialize,
    deserialize: Deserialize,
    argument: unknown,
    metadata: unknown,
    options: object,
    callback: (err: Error | null, res?: unknown) => void,
  ): unknown;
}

interface ConnectionPool {
  withConnection<T>(
    service: string,
    fn: (c: { resource: unknown; client: GrpcClient; metadata: unknown }) => Promise<T> | T,
  ): Promise<T>;
  markFailed(resource: unknown, error: Error): void;
}

function connectionPool(etcd: Etcd3): ConnectionPool | undefined {
  const pool = (etcd as unknown as { pool?: Partial<ConnectionPool> }).pool;
  return pool && typeof pool.withConnection === "function" && typeof pool.markFailed === "function"
    ? (pool as ConnectionPool)
    : undefined;
}

/** etcd3's own request encoder for a method (requests are few and small; responses are not). */
function requestSerializer(client: GrpcClient, method: string): Serialize | undefined {
  const service = (client.constructor as { service?: Record<string, { requestSerialize?: Serialize }> }).service;
  const serialize = service?.[method]?.requestSerialize;
  return typeof serialize === "function" ? serialize : undefined;
}

const decoder = new TextDecoder();

/** etcd3's KeyValue object → the mirror's record (the fallback path). */
export function toMirrorKv(kv: IKeyValue): MirrorKv {
  return {
    key: decoder.decode(kv.key),
    value: kv.value ? decoder.decode(kv.value) : "",
    createRevision: Number(kv.create_revision ?? 0),
    modRevision: Number(kv.mod_revision ?? 0),
    lease: kv.lease ?? "0",
  };
}

function fromEtcd3Watch(res: IWatchResponse): DecodedWatchResponse {
  const events: MirrorEvent[] = (res.events ?? []).map((ev) => ({
    type: String(ev.type).toLowerCase() === "delete" ? "delete" : "put",
    kv: toMirrorKv(ev.kv),
  }));
  return {
    revision: Number(res.header?.revision ?? 0),
    watchId: Number(res.watch_id ?? 0),
    created: Boolean(res.created),
    canceled: Boolean(res.canceled),
    compactRevision: Number(res.compact_revision ?? 0),
    cancelReason: res.cancel_reason ?? "",
    events,
  };
}

/** Open a watch stream whose "data" events are already decoded. */
export async function openWatchStream(etcd: Etcd3): Promise<WatchStream> {
  const pool = connectionPool(etcd);
  if (pool) {
    const stream = await pool.withConnection("Watch", ({ resource, client, metadata }) => {
      const serialize = requestSerializer(client, "Watch");
      if (!serialize) return undefined;
      const s = client.makeBidiStreamRequest("/etcdserverpb.Watch/Watch", serialize, decodeWatchResponse, metadata, {});
      // As etcd3 does: a stream that fails while still open marks the host failed (failover).
      s.on("error", (err) => (s as { writable?: boolean }).writable && pool.markFailed(resource, err));
      return s;
    });
    if (stream) return stream;
  }
  return adaptEtcd3Watch(await etcd.watchClient.watch());
}

type Etcd3WatchStream = Awaited<ReturnType<Etcd3["watchClient"]["watch"]>>;

/** etcd3's watch stream, its responses converted (the fallback path). */
function adaptEtcd3Watch(inner: Etcd3WatchStream): WatchStream {
  const adapted = {
    on(event: "data" | "error" | "end", listener: (arg: never) => void): WatchStream {
      if (event === "data")
        inner.on("data", (res: IWatchResponse) => (listener as (r: DecodedWatchResponse) => void)(fromEtcd3Watch(res)));
      else if (event === "error") inner.on("error", listener as (err: Error) => void);
      else inner.on("end", listener as () => void);
      return adapted;
    },
    write: (req: IWatchRequest) => inner.write(req),
    end: () => inner.end(),
    cancel: () => (inner as { cancel?: () => void }).cancel?.(),
  } as WatchStream;
  return adapted;
}

/**
 * A unary KV call on etcd3's connections with our own (de)serializer; undefined when the pool
 * is not there, has no serializer for it, or the auth token expired: then the caller uses
 * etcd3's public API (which re-authenticates).
 */
async function unaryOnPool<Req, Res>(
  etcd: Etcd3,
  method: "Range" | "Txn",
  serialize: (client: GrpcClient) => Serialize | undefined,
  deserialize: (bytes: Buffer) => Res,
  req: Req,
  options: { deadline: number },
): Promise<Res | undefined> {
  const pool = connectionPool(etcd);
  if (!pool) return undefined;
  try {
    return await pool.withConnection("KV", ({ client, metadata }) => {
      const encode = serialize(client);
      if (!encode) return undefined;
      return new Promise<Res>((resolve, reject) => {
        client.makeUnaryRequest(
          `/etcdserverpb.KV/${method}`,
          encode,
          deserialize,
          req,
          metadata,
          options,
          (err, res) => (err ? reject(castGrpcError(err)) : resolve(res as Res)),
        );
      });
    });
  } catch (err) {
    // An expired auth token: etcd3's own call re-authenticates; anything else is the caller's.
    if (!(err instanceof EtcdInvalidAuthTokenError)) throw err;
    return undefined;
  }
}

/** One page of a range request, decoded into mirror records. */
export async function rangeDecoded(
  etcd: Etcd3,
  req: IRangeRequest,
  options: { deadline: number },
): Promise<DecodedRangeResponse> {
  const decoded = await unaryOnPool(
    etcd,
    "Range",
    (client) => requestSerializer(client, "Range"),
    decodeRangeResponse,
    req,
    options,
  );
  if (decoded) return decoded;
  const res = await etcd.kv.range(req, options);
  return {
    revision: Number(res.header.revision),
    kvs: res.kvs.map(toMirrorKv),
    more: Boolean(res.more),
    count: Number(res.count ?? 0),
  };
}

/** A transaction written and read by txn-codec.ts (the claim path). */
export async function txnDecoded(
  etcd: Etcd3,
  spec: TxnSpec,
  options: { deadline: number },
): Promise<DecodedTxnResponse> {
  const encode: Serialize = (value) => encodeTxnRequest(value as TxnSpec);
  const decoded = await unaryOnPool(etcd, "Txn", () => encode, decodeTxnResponse, spec, options);
  if (decoded) return decoded;
  const res = await etcd.kv.txn(
    {
      compare: spec.compare.map((c) => ({
        key: asBuffer(c.key),
        target: c.target === "version" ? "Version" : c.target === "create" ? "Create" : "Value",
        result: c.result === "equal" ? "Equal" : "Greater",
        ...(c.target === "version"
          ? { version: c.version }
          : c.target === "create"
            ? { create_revision: c.createRevision }
            : { value: asBuffer(c.value) }),
      })),
      success: spec.success.map(toRequestOp),
      failure: spec.failure.map(toRequestOp),
    },
    options,
  );
  return {
    revision: Number(res.header.revision),
    succeeded: res.succeeded,
    responses: res.responses.map((op) => {
      const range = op.response_range;
      return range ? { kvs: range.kvs.map(toMirrorKv), count: Number(range.count ?? 0) } : { kvs: [], count: 0 };
    }),
  };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function toRequestOp(op: TxnOp): IRequestOp {
  if ("put" in op)
    return {
      request_put: {
        key: asBuffer(op.put.key),
        value: asBuffer(op.put.value),
        ...(op.put.lease && op.put.lease !== "0" ? { lease: op.put.lease } : {}),
      },
    };
  return { request_range: { key: asBuffer(op.range.key), ...(op.range.countOnly ? { count_only: true } : {}) } };
}
