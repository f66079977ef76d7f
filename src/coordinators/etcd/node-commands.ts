/**
 * This node's command inbox: keys `nodes/M/commands/<n>` seen by the nodes/ watch. Commands
 * are delivered in create-revision order (submission order; Go's key order is random), each
 * exactly once per value, and deleted as consumed. A malformed command is logged and deleted,
 * never thrown (Go panics on it).
 */
import { Buffer } from "node:buffer";
import type { Etcd3 } from "etcd3";
import { decodeCommand } from "../../command.ts";
import { describeError, errorLine } from "../../errors.ts";
import type { Logger, NodeCommand } from "../../types.ts";
import type { Keys } from "./keys.ts";
import type { MirrorEvent, MirrorKv } from "./watch.ts";

export interface NodeCommandInboxOptions {
  readonly etcd: Etcd3;
  readonly keys: Keys;
  readonly node: string;
  readonly requestTimeout: number;
  readonly log: Logger;
  readonly deliver: (cmd: NodeCommand) => void;
}

export class NodeCommandInbox {
  /** Command key → mod revision already taken (delivered or rejected), until its delete is seen. */
  private readonly taken = new Map<string, number>();
  private readonly prefix: string;

  constructor(private readonly options: NodeCommandInboxOptions) {
    this.prefix = options.keys.nodeCommandsPrefix(options.node);
  }

  /** A listing of nodes/: take pending commands, oldest first. */
  snapshot(kvs: readonly MirrorKv[]): void {
    const mine = kvs.filter((kv) => this.isCommand(kv.key)).sort((a, b) => a.createRevision - b.createRevision);
    const present = new Set(mine.map((kv) => kv.key));
    for (const key of this.taken.keys()) if (!present.has(key)) this.taken.delete(key);
    for (const kv of mine) this.take(kv);
  }

  /** Watch events under nodes/ (already in revision order). */
  events(events: readonly MirrorEvent[]): void {
    for (const ev of events) {
      if (!this.isCommand(ev.kv.key)) continue;
      if (ev.type === "delete") this.taken.delete(ev.kv.key);
      else this.take(ev.kv);
    }
  }

  private isCommand(key: string): boolean {
    if (!key.startsWith(this.prefix)) return false;
    const parsed = this.options.keys.parseNodeKey(key);
    return parsed?.part === "command" && parsed.node === this.options.node;
  }

  private take(kv: MirrorKv): void {
    if (this.taken.get(kv.key) === kv.modRevision) {
      void this.remove(kv); // taken before, but our delete did not land: try again, do not redeliver
      return;
    }
    this.taken.set(kv.key, kv.modRevision);
    const decoded = decodeCommand(kv.value);
    if (!decoded.ok) {
      this.options.log.warn(`dropping malformed node command at ${kv.key}: ${decoded.error}`);
    } else {
      try {
        this.options.deliver(decoded.command);
      } catch (err) {
        this.options.log.error(`node command ${decoded.command.command} from ${kv.key} failed: ${describeError(err)}`);
      }
    }
    void this.remove(kv);
  }

  /** Delete exactly this command (not a newer value written to the same key). */
  private async remove(kv: MirrorKv): Promise<void> {
    const key = Buffer.from(kv.key);
    try {
      await this.options.etcd.kv.txn(
        {
          compare: [{ key, target: "Mod", result: "Equal", mod_revision: kv.modRevision }],
          success: [{ request_delete_range: { key } }],
        },
        { deadline: Date.now() + this.options.requestTimeout },
      );
    } catch (err) {
      this.options.log.debug(
        `could not delete consumed node command ${kv.key} (retried on the next listing): ${errorLine(err)}`,
      );
    }
  }
}
