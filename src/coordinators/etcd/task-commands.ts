/**
 * Task commands over etcd (docs/wire-format.md): a single slot per task, `N/tasks/T/commands`, holding
 * one Message JSON (last write wins). Only the task's current owner consumes it: the delete
 * is a transaction guarded by the owner key's value, so a node that lost the claim leaves the
 * command for the next owner.
 *
 * Every command we write decodes on a Go node: an error command carries its text in
 * `error_text`, never in Go's `error` field (an error interface Go cannot decode from JSON);
 * Go's own error commands ({"error":{}}) arrive as an error of unknown text (see codec.ts).
 */
import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import { scopedLogger } from "../../log.ts";
import { decodeMessage, encodeMessage } from "../../statemachine/codec.ts";
import type { Message, TaskCommander, TaskCommandSource } from "../../statemachine/types.ts";
import type { ClaimRef, Logger } from "../../types.ts";
import { encodeOwner, Keys } from "./keys.ts";

export class EtcdTaskCommands implements TaskCommander, TaskCommandSource {
  private readonly keys: Keys;
  private readonly ownerValue: string;
  private readonly log: Logger;

  /** `node` is this node's name: commands are consumed only for tasks it owns. */
  constructor(
    private readonly client: Etcd3,
    namespace: string | Keys,
    readonly node: string,
    log?: Logger,
  ) {
    this.keys = typeof namespace === "string" ? new Keys(namespace) : namespace;
    this.ownerValue = encodeOwner(node);
    this.log = log ?? scopedLogger("task-commands");
  }

  /** Put the command in the task's slot, replacing any command not yet taken. */
  async send(taskId: string, message: Message): Promise<void> {
    let value: string;
    try {
      value = encodeMessage(message);
    } catch (err) {
      throw new TypeError(`command for task "${taskId}" is invalid: ${(err as Error).message}`);
    }
    await this.client.put(this.keys.taskCommands(taskId)).value(value).exec();
  }

  /**
   * Commands for `taskId` while this node owns it: the slot's current value, then every later
   * write (watched from the listing's revision + 1, so none is missed). If the watch fails
   * (e.g. compaction), the slot is listed again and watched anew.
   */
  async *listen(taskId: string, signal: AbortSignal, claim?: ClaimRef): AsyncIterable<Message> {
    const key = this.keys.taskCommands(taskId);
    while (!signal.aborted) {
      const pending: IKeyValue[] = [];
      let broken = false;
      let wake: () => void = () => {};
      const notify = (): void => wake();
      const listing = await this.client.get(key).exec();
      if (listing.kvs[0]) pending.push(listing.kvs[0]);
      const watcher: Watcher = await this.client
        .watch()
        .key(key)
        .startRevision(String(BigInt(listing.header.revision) + 1n))
        .create();
      watcher.on("put", (kv) => {
        pending.push(kv);
        notify();
      });
      watcher.on("error", (err) => {
        this.log.warn(`command watch for task "${taskId}" failed (${err.message}); listing again`);
        broken = true;
        notify();
      });
      const onAbort = (): void => notify();
      signal.addEventListener("abort", onAbort);
      try {
        while (!signal.aborted && !broken) {
          const kv = pending.shift();
          if (kv) {
            const message = await this.consume(taskId, key, kv, claim);
            if (message) yield message;
            continue;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = () => {};
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        // Not awaited: with etcd unreachable, cancel waits for a reconnect; nothing depends on it.
        watcher.cancel().catch(() => undefined);
      }
    }
  }

  /**
   * Take one command if this node owns the task: delete it only if the owner is us and the
   * slot still holds this very write (a newer command is left for its own watch event).
   * With `claim`, the owner key must also have been created at its token: once that claim
   * ended, a later claim (even by this node) is a different owner and this listener takes nothing.
   * Malformed commands are deleted (by the owner) and logged, never delivered.
   */
  private async consume(taskId: string, key: string, kv: IKeyValue, claim?: ClaimRef): Promise<Message | undefined> {
    const raw = kv.value.toString();
    let message: Message | undefined;
    let problem: string | undefined;
    try {
      message = decodeMessage(raw);
    } catch (err) {
      problem = (err as Error).message;
    }
    let cond = this.client
      .if(this.keys.owner(taskId), "Value", "==", this.ownerValue)
      .and(key, "Mod", "==", kv.mod_revision);
    if (claim) cond = cond.and(this.keys.owner(taskId), "Create", "==", claim.token);
    const res = await cond.then(this.client.delete().key(key)).commit();
    if (!res.succeeded) {
      this.log.debug(
        `command for task "${taskId}" not taken: this node is not its owner, or a newer command replaced it`,
      );
      return undefined;
    }
    if (problem !== undefined) {
      this.log.warn(`deleted a malformed command for task "${taskId}": ${problem}`);
      return undefined;
    }
    return message;
  }
}
