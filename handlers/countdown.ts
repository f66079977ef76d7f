/**
 * A finite handler: counts down `props.from` seconds (else the number after the ':' in the id,
 * else 3), then returns "done", which deletes the task. Stopped early, it returns "release" and
 * the count starts over wherever the task runs next. Submit one with:
 *   metafora submit countdown:5
 *   metafora submit countdown:launch --props '{"from":10}'
 */
import { defineHandler } from "metafora";

export default defineHandler<{ from?: number }>({
  async run(task, ctx) {
    const fromId = Number(task.id.slice(task.id.indexOf(":") + 1));
    let left = typeof task.props.from === "number" ? task.props.from : Number.isInteger(fromId) && fromId > 0 && task.id.includes(":") ? fromId : 3;
    while (left > 0) {
      ctx.log.info(`${task.id}: ${left}`);
      const stopped = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        ctx.signal.addEventListener("abort", () => (clearTimeout(timer), resolve(true)), { once: true });
      });
      if (stopped) return "release";
      left--;
    }
    ctx.log.info(`${task.id}: lift-off`);
    return "done";
  },
});
