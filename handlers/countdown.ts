/**
 * A finite handler that resumes where it stopped: counts down `props.from` seconds (else the
 * number after the ':' in the id, else 3), then returns "done", which deletes the task. Every
 * second it stores how far it got with ctx.checkpoint (fenced by its claim), so when it is
 * stopped (shutdown, rebalance, a node dying) the next owner, here or on another node, carries
 * on from ctx.lastCheckpoint instead of starting over. Submit one with:
 *   metafora submit countdown:5
 *   metafora submit countdown:launch --props '{"from":10}'
 */
import { defineHandler } from "metafora";

export default defineHandler<{ from?: number }>({
  async run(task, ctx) {
    const fromId = Number(task.id.slice(task.id.indexOf(":") + 1));
    const fromProps =
      typeof task.props.from === "number"
        ? task.props.from
        : Number.isInteger(fromId) && fromId > 0 && task.id.includes(":")
          ? fromId
          : 3;
    const resumed = ctx.lastCheckpoint as { left?: unknown } | undefined;
    let left = typeof resumed?.left === "number" ? resumed.left : fromProps;
    if (resumed !== undefined) ctx.log.info(`${task.id}: resuming at ${left}`);
    while (left > 0) {
      ctx.log.info(`${task.id}: ${left}`);
      // false instead of waking up when the task is no longer ours (stop, lost claim, pause)
      if (!(await ctx.sleep(1000))) return "release";
      left--;
      await ctx.checkpoint({ left });
    }
    // The last side effect: make sure the task is still ours right before it.
    if (!ctx.owned()) return "release";
    ctx.log.info(`${task.id}: lift-off`);
    return "done";
  },
});
