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
    // ctx.sleep resolves false (instead of waking the handler) once the task is no longer ours.
    while (await ctx.sleep(every)) {
      ctx.log.info(`still here: ${task.id}, greeting #${++greetings}`);
    }
    // ctx.signal.reason says why: shutdown, balance, lost claim, command...
    const reason = ctx.signal.reason as Error | undefined;
    ctx.log.info(`${task.id} stopping: ${reason?.message ?? "no longer owned"}`);
    return "release";
  },
});
