/**
 * A plain long-running handler: greets every few seconds until asked to stop, then hands the
 * task back ("release") so it can resume elsewhere. Submit one with:
 *   metafora submit hello:world
 */
import { defineHandler } from "metafora";

export default defineHandler<{ every?: number }>({
  async run(task, ctx) {
    const every = typeof task.props.every === "number" ? task.props.every : 5000;
    let greetings = 0;
    ctx.log.info(`hello from ${task.id} on ${ctx.node} (fencing token ${ctx.token})`);
    while (!ctx.signal.aborted) {
      await sleep(every, ctx.signal);
      if (!ctx.signal.aborted) ctx.log.info(`still here: ${task.id}, greeting #${++greetings}`);
    }
    // ctx.signal.reason says why: shutdown, balance, lost claim, command...
    ctx.log.info(`${task.id} stopping: ${(ctx.signal.reason as Error).message}`);
    return "release";
  },
});

/** Resolves after `ms`, or as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
