/**
 * A node's registration in etcd: its name marker and the metadata keys, all on the node's
 * lease, written only if the name is not live (Go nodes register the same way). The lease
 * keeps them alive; when it ends they go and the name is free again.
 */
import { Buffer } from "node:buffer";
import { hostname } from "node:os";
import type { Etcd3, IRequestOp } from "etcd3";
import { errorLine, NodeNameTakenError } from "../../errors.ts";
import type { Logger } from "../../types.ts";
import type { EtcdConfig } from "./config.ts";
import { retryDelay, sleep } from "./timing.ts";
import { encodeMetadata, encodeStandbyMarker, type Keys } from "./keys.ts";
import { NodeLease } from "./lease.ts";
import type { MirrorKv } from "./watch.ts";

/** Grant a lease and register the node name on it; NodeNameTakenError if the name is live. */
export async function registerNode(
  etcd: Etcd3,
  keys: Keys,
  node: string,
  config: EtcdConfig,
  log: Logger,
): Promise<NodeLease> {
  const lease = await NodeLease.grant(etcd, config.leaseTtl, config.dialTimeout, log);
  const meta = Buffer.from(encodeMetadata(hostName(), node));
  const marker = Buffer.from(keys.node(node));
  const put = (key: string | Buffer, value = meta): IRequestOp => ({
    request_put: { key: Buffer.from(key), value, lease: lease.id },
  });
  // The marker says "joining" until the node has listed the tasks (markNode "ready"): the
  // others do not rebalance towards a node that cannot claim yet.
  const joining = Buffer.from(encodeStandbyMarker(hostName(), node, "joining"));
  let registered = false;
  try {
    const res = await etcd.kv.txn(
      {
        compare: [{ key: marker, target: "Version", result: "Equal", version: 0 }],
        // Go's order: namespace metadata, node marker, tasks metadata, commands metadata.
        success: [
          put(keys.metadata),
          put(marker, joining),
          put(keys.tasksMetadata),
          put(keys.nodeCommandsMetadata(node)),
        ],
      },
      { deadline: Date.now() + config.dialTimeout },
    );
    registered = res.succeeded;
  } catch (err) {
    await lease.revoke(config.requestTimeout).catch(() => undefined);
    throw err;
  }
  if (!registered) {
    await lease.revoke(config.requestTimeout).catch(() => undefined);
    throw new NodeNameTakenError(node, keys.ns);
  }
  return lease;
}

/**
 * Put the node's marker back on its lease if it is missing (deleted by hand while the lease
 * lives), so the name stays taken. True when it was put back.
 */
export async function restoreNodeMarker(
  etcd: Etcd3,
  keys: Keys,
  node: string,
  leaseId: string,
  timeoutMs: number,
): Promise<boolean> {
  const marker = Buffer.from(keys.node(node));
  const res = await etcd.kv.txn(
    {
      compare: [{ key: marker, target: "Version", result: "Equal", version: 0 }],
      success: [{ request_put: { key: marker, value: Buffer.from(encodeMetadata(hostName(), node)), lease: leaseId } }],
    },
    { deadline: Date.now() + timeoutMs },
  );
  return res.succeeded;
}

/**
 * Rewrite the node marker: "ready" (Go's plain metadata: the node has listed the tasks and
 * claims) or "leaving" (its graceful shutdown has begun, so the others stop counting it before
 * its releases reach them). Only while the marker is on our lease: a marker that is gone or
 * someone else's is left alone. True when written.
 */
export async function markNode(
  etcd: Etcd3,
  keys: Keys,
  node: string,
  leaseId: string,
  as: "ready" | "leaving",
  timeoutMs: number,
): Promise<boolean> {
  const marker = Buffer.from(keys.node(node));
  const value = as === "ready" ? encodeMetadata(hostName(), node) : encodeStandbyMarker(hostName(), node, "leaving");
  const res = await etcd.kv.txn(
    {
      compare: [{ key: marker, target: "Lease", result: "Equal", lease: leaseId }],
      success: [{ request_put: { key: marker, value: Buffer.from(value), lease: leaseId } }],
    },
    { deadline: Date.now() + timeoutMs },
  );
  return res.succeeded;
}

export interface MarkReadyOptions {
  readonly etcd: Etcd3;
  readonly keys: Keys;
  readonly node: string;
  readonly leaseId: string;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** False once this lease is no longer the node's, or the node closes: stop trying. */
  current(): boolean;
}

/**
 * The node has listed the tasks: rewrite its marker from "joining" to Go's plain metadata, so
 * the others count it for shares (and rebalance towards it). A few quick attempts; if etcd
 * keeps refusing, carried on in the background (resolves then), since a node left "joining"
 * would only ever get the tasks nobody else claims first.
 */
export async function markReady(o: MarkReadyOptions): Promise<void> {
  const attempt = (): Promise<boolean> => markNode(o.etcd, o.keys, o.node, o.leaseId, "ready", o.timeoutMs);
  for (let n = 0; n < 3; n++) {
    if (!o.current()) return;
    try {
      await attempt();
      return;
    } catch (err) {
      if (n === 2) o.log.warn(`could not mark the node ready yet (${errorLine(err)}); retrying in the background`);
      else await sleep(retryDelay(n));
    }
  }
  void (async () => {
    for (let n = 3; o.current(); n++) {
      await sleep(Math.min(10_000, retryDelay(n)));
      if (!o.current()) return;
      try {
        await attempt();
        o.log.info("node marked ready");
        return;
      } catch (err) {
        o.log.debug(`could not mark the node ready (attempt ${n}): ${errorLine(err)}`);
      }
    }
  })();
}

/** The metadata's informational host field; Deno without --allow-sys may refuse to say. */
function hostName(): string {
  try {
    return hostname();
  } catch {
    return "unknown";
  }
}

/**
 * Every live node, Go's or ours, registers its marker on its lease. A marker without one (put by
 * hand, left over) is no node: counting it would make live nodes hand tasks to nobody.
 */
export function onLease(kv: MirrorKv): boolean {
  return kv.lease !== "0" && kv.lease !== "";
}
