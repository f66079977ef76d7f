/**
 * Group commit: writes asked for in the same event-loop turn (the HTTP submits whose requests
 * arrived together, the claims of one drain) share ONE transaction and therefore one fsync,
 * and every caller hears back only after that commit is on disk. Under load this turns N
 * fsyncs into one per turn, which is where the submits/s come from; alone, a write waits for
 * nothing but its own commit (the flush runs on the next setImmediate, not on a timer).
 *
 * Each write runs inside a SAVEPOINT, so one that throws (a constraint, a bad value) fails on
 * its own and the rest of the batch still commits. If the COMMIT itself fails (disk full, I/O
 * error), every write of the batch is rejected: none of them was acknowledged.
 */
import type { DatabaseSync } from "node:sqlite";

interface Pending {
  readonly write: () => void;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;
  /** Transactions committed and writes they held, for benchmarks and tests. */
  commits = 0;
  writes = 0;

  constructor(private readonly db: DatabaseSync) {}

  /** Run `write` (synchronous SQL) in the next group transaction; resolves once it is durable. */
  run(write: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the embedded store is closed"));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commit whatever is queued now (also used by close()). */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    const failed = new Map<Pending, unknown>();
    try {
      this.db.exec("BEGIN IMMEDIATE");
      for (const p of batch) {
        this.db.exec("SAVEPOINT w");
        try {
          p.write();
          this.db.exec("RELEASE w");
        } catch (err) {
          this.db.exec("ROLLBACK TO w");
          this.db.exec("RELEASE w");
          failed.set(p, err);
        }
      }
      this.db.exec("COMMIT");
    } catch (err) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // no transaction was open (BEGIN failed), or the connection is unusable; every caller
        // hears of the original failure either way
      }
      for (const p of batch) p.reject(err);
      return;
    }
    this.commits++;
    this.writes += batch.length;
    for (const p of batch) {
      const err = failed.get(p);
      if (err === undefined) p.resolve();
      else p.reject(err);
    }
  }

  close(): void {
    this.flush();
    this.closed = true;
  }
}
