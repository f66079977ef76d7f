/**
 * A stateful handler (state machine): works through `props.steps` steps (default 30), one every
 * `props.stepMs` ms (default 2000), so about a minute, then completes. Operators can pause, resume, put to sleep
 * or kill it while it runs, and its state (paused, sleeping until, ...) survives restarts:
 *   metafora submit batch:nightly --props '{"steps":20}'
 *   metafora pause batch:nightly     metafora resume batch:nightly     metafora state batch:nightly
 * Progress is kept in this process's memory for brevity; a real handler stores it downstream,
 * fenced with ctx.token, so another node can pick up where this one stopped.
 */
import { defineStatefulHandler } from "metafora";

const progress = new Map<string, number>();

export default defineStatefulHandler<{ steps?: number; stepMs?: number }>({
  async run(task, ctx) {
    const steps = typeof task.props.steps === "number" ? task.props.steps : 30;
    const stepMs = typeof task.props.stepMs === "number" ? task.props.stepMs : 2000;
    const commands = ctx.commands[Symbol.asyncIterator]();
    const nextCommand = commands.next();
    let done = progress.get(task.id) ?? 0;
    while (done < steps) {
      // ctx.sleep resolves false once the task is no longer ours (stop, lost claim, a pause).
      const tick = ctx.sleep(stepMs).then((owned) => (owned ? "tick" : "stop"));
      const first = await Promise.race([tick, nextCommand]);
      if (first === "stop") return "release";
      if (first !== "tick") {
        // A command (pause, sleep, kill, release on stop...): hand it to the state machine.
        if (first.done) return "release";
        return first.value;
      }
      done++;
      progress.set(task.id, done);
      ctx.log.info(`${task.id}: step ${done}/${steps}`);
    }
    progress.delete(task.id);
    ctx.log.info(`${task.id}: all ${steps} steps done`);
    return "complete";
  },
});
