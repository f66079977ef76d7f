/**
 * The state machine contract, run against each store + commands implementation (memory and
 * etcd): equivalents of Go's T21–T28, every rule of the table and every invalid pair driven
 * through the runner, plus the behaviours the issue adds (original sleep deadline after a
 * release, paused across a node kill, fault retry policy, store failures).
 */
import { describe, expect, test } from "bun:test";
import { defaultErrorPolicy } from "../../src/statemachine/error-policy.ts";
import { StateStoreError } from "../../src/statemachine/errors.ts";
import { errorMessage, sleepMessage } from "../../src/statemachine/messages.ts";
import { allRules, TRANSITIONS } from "../../src/statemachine/rules.ts";
import {
  MESSAGE_CODES,
  STATE_CODES,
  isTerminal,
  type Message,
  type MessageCode,
  type State,
  type StateCode,
  type StatefulContext,
} from "../../src/statemachine/types.ts";
import { staysFalse, waitFor, deferred } from "../support/wait.ts";
import {
  fixedPolicy,
  firstCommand,
  handlerFor,
  makeContext,
  RecordingStore,
  ScriptedRun,
  start,
  taskId,
  type MachineEnv,
} from "./support.ts";

const HOUR = 60 * 60 * 1000;

function initialState(code: StateCode): State {
  switch (code) {
    case "sleeping":
      return { code, until: new Date(Date.now() + HOUR) };
    case "fault":
      return { code, errors: [{ timestamp: new Date(), error: "earlier failure" }] };
    default:
      return { code };
  }
}

function messageOf(code: MessageCode): Message {
  if (code === "sleep") return sleepMessage(new Date(Date.now() + 2 * HOUR));
  if (code === "error") return errorMessage("boom");
  return { code };
}

export function runnerContract(getEnv: () => MachineEnv): void {
  const env = (): MachineEnv => getEnv();

  /** Seed a task's state directly in the store and make node1 its owner. */
  async function seed(id: string, state: State, node = "node1"): Promise<void> {
    await env().own(id, node);
    await env().store.store(id, state);
  }

  describe("every rule of the table, driven through the runner", () => {
    test("the table has Go's 23 rules", () => {
      expect(allRules().length).toBe(23);
    });

    for (const rule of allRules()) {
      test(`${rule.from} --${rule.message}--> ${rule.to}`, async () => {
        const id = taskId("rule");
        const initial = initialState(rule.from);
        await seed(id, initial);
        const store = new RecordingStore(env().store);
        const msg = messageOf(rule.message);
        const scripted = new ScriptedRun();
        if (rule.from === "runnable") scripted.script[0] = () => msg;
        const handler = handlerFor(
          env(),
          store,
          scripted.run,
          "node1",
          rule.from === "fault" ? fixedPolicy(msg) : undefined,
        );
        const running = start(handler, id);
        if (rule.from === "sleeping" || rule.from === "paused") await env().commands("node1").send(id, msg);

        if (rule.message === "release") {
          // Go HEAD behaviour (since its change to skip unchanged stores): a release that changes nothing is
          // NOT stored. Go's own TestRules expected a store here and hangs at HEAD.
          expect(await running.result).toBe("release");
          expect(store.count(id)).toBe(0);
          const after = await env().read(id);
          expect(after?.code).toBe(rule.from);
          expect(after?.until?.getTime()).toBe(initial.until?.getTime());
          return;
        }
        await waitFor(`a stored transition for ${id}`, () => store.count(id) >= 1);
        const first = store.writes[0]!.state;
        expect(first.code).toBe(rule.to);
        if (rule.to === "sleeping") {
          // sleep sets the message's deadline; checkpoint keeps the current one.
          const expected = rule.message === "sleep" ? msg.until : initial.until;
          expect(first.until?.getTime()).toBe(expected!.getTime());
        } else {
          expect(first.until).toBeUndefined();
        }
        if (rule.message === "error") expect(first.errors?.at(-1)?.error).toBe("boom");
        if (rule.from === "fault") expect(first.errors?.[0]?.error).toBe("earlier failure"); // history carried forward
        if (isTerminal(rule.to)) {
          expect(await running.result).toBe("done");
        } else {
          running.stop();
          expect(await running.result).toBe("release");
        }
      });
    }
  });

  describe("every invalid (state, message) pair, driven through the runner", () => {
    const invalid: Array<{ from: StateCode; message: MessageCode }> = [];
    for (const from of STATE_CODES) {
      if (isTerminal(from)) continue;
      for (const message of MESSAGE_CODES)
        if (TRANSITIONS[from][message] === undefined) invalid.push({ from, message });
    }

    test("the invalid live pairs are exactly sleeping+complete, paused+error/complete and fault+6", () => {
      expect(invalid.map((p) => `${p.from}+${p.message}`).sort()).toEqual(
        [
          "sleeping+complete",
          "paused+error",
          "paused+complete",
          "fault+run",
          "fault+pause",
          "fault+kill",
          "fault+complete",
          "fault+checkpoint",
          "fault+release",
        ].sort(),
      );
    });

    for (const pair of invalid) {
      test(`${pair.from} + ${pair.message} is invalid`, async () => {
        const id = taskId("invalid");
        await seed(id, initialState(pair.from));
        const store = new RecordingStore(env().store);
        const msg = messageOf(pair.message);
        const scripted = new ScriptedRun();
        const handler = handlerFor(
          env(),
          store,
          scripted.run,
          "node1",
          pair.from === "fault" ? fixedPolicy(msg) : undefined,
        );
        const running = start(handler, id);
        if (pair.from !== "fault") await env().commands("node1").send(id, msg);

        if (pair.from === "paused") {
          // paused has no `error` rule: the task is released unchanged and stays paused (Go).
          expect(await running.result).toBe("release");
          expect(store.count(id)).toBe(0);
          expect((await env().read(id))?.code).toBe("paused");
        } else if (pair.from === "fault") {
          // fault + anything but sleep/error → error → failed, naming the invalid message.
          expect(await running.result).toBe("done");
          const last = store.last(id)!;
          expect(last.code).toBe("failed");
          expect(last.errors?.at(-1)?.error).toContain(`invalid message "${pair.message}" in state "fault`);
        } else {
          // sleeping + complete → error → fault, with the reason in the history.
          await waitFor("the fault to be stored", () => store.count(id) >= 1);
          const first = store.writes[0]!.state;
          expect(first.code).toBe("fault");
          expect(first.errors?.at(-1)?.error).toContain(`invalid message "complete" in state "sleeping`);
          running.stop();
          expect(await running.result).toBe("release");
          expect(scripted.calls).toBe(0);
        }
      });
    }

    test("terminal states never run: any pending command, nothing stored, the task is done (Go T26)", async () => {
      for (const from of STATE_CODES.filter(isTerminal)) {
        for (const message of MESSAGE_CODES) {
          const id = taskId("terminal");
          await seed(id, { code: from });
          await env().commands("node1").send(id, messageOf(message));
          const store = new RecordingStore(env().store);
          const scripted = new ScriptedRun();
          const running = start(handlerFor(env(), store, scripted.run), id);
          expect(await running.result).toBe("done");
          expect(store.count(id)).toBe(0);
          expect(scripted.calls).toBe(0);
          expect((await env().read(id))?.code).toBe(from);
        }
      }
    });

    test("a handler returning nothing or an invalid message faults the task with the reason", async () => {
      const cases: Array<{ value: unknown; reason: string }> = [
        { value: undefined, reason: "returned nothing" },
        { value: "done", reason: 'returned "done"' },
        { value: "sleep", reason: "needs a Message object with until" },
        { value: { code: "sleep" }, reason: "needs an until" },
        { value: { code: "error" }, reason: "needs an error" },
        { value: { code: "explode" }, reason: "unknown message code" },
        { value: 42, reason: "expected a message object" },
      ];
      for (const c of cases) {
        const id = taskId("bad-result");
        await seed(id, { code: "runnable" });
        const store = new RecordingStore(env().store);
        const scripted = new ScriptedRun();
        scripted.script[0] = () => c.value as Message;
        const running = start(handlerFor(env(), store, scripted.run), id);
        await waitFor("the fault to be stored", () => store.count(id) >= 1);
        const fault = store.writes[0]!.state;
        expect(fault.code).toBe("fault");
        expect(fault.errors?.at(-1)?.error).toContain(c.reason);
        running.stop();
        expect(await running.result).toBe("release");
      }
    });
  });

  describe("Go test equivalents", () => {
    test("T21: a loop the handler leaks cannot swallow commands sent after it returned", async () => {
      const id = taskId("t21");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const leaked: Message[] = [];
      const leak = (ctx: StatefulContext): void => {
        void (async () => {
          for await (const m of ctx.commands) leaked.push(m);
        })();
      };
      const scripted = new ScriptedRun();
      scripted.script[0] = (ctx) => {
        leak(ctx); // reading when the handler returns
        return sleepMessage(new Date(Date.now() + HOUR));
      };
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("sleeping to be stored", () => store.last(id)?.code === "sleeping");
      await env().commands("node1").send(id, { code: "pause" });
      await waitFor("paused to be stored", () => store.last(id)?.code === "paused");
      expect(leaked).toEqual([]);
      running.stop();
      expect(await running.result).toBe("release");
      expect(leaked).toEqual([]);
    });

    test("T21: a command pending when the handler returns goes to the next state, not to a leaked reader", async () => {
      const id = taskId("t21b");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const leaked: Message[] = [];
      const gate = deferred();
      const scripted = new ScriptedRun();
      scripted.script[0] = async (ctx) => {
        await gate.promise; // the handler ignores its commands while it works
        void (async () => {
          for await (const m of ctx.commands) leaked.push(m); // starts reading as it returns
        })();
        return "checkpoint";
      };
      const running = start(handlerFor(env(), store, scripted.run), id);
      await env().commands("node1").send(id, { code: "pause" });
      await waitFor("the listener to take the command", () => env().commandTaken(id));
      gate.resolve();
      // checkpoint → runnable, then the second execution receives the pending pause.
      await waitFor("paused to be stored", () => store.last(id)?.code === "paused");
      expect(store.codes(id)).toEqual(["runnable", "paused"]);
      expect(scripted.calls).toBe(2);
      expect(leaked).toEqual([]);
      running.stop();
      expect(await running.result).toBe("release");
    });

    test("T23: checkpoint re-enters the handler without exiting; release exits, state runnable", async () => {
      const id = taskId("t23");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      scripted.script[0] = () => "checkpoint";
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the second execution", () => scripted.calls === 2);
      await staysFalse("the machine to exit after checkpoint", () => running.outcome(), 200);
      await env().commands("node1").send(id, { code: "release" });
      expect(await running.result).toBe("release");
      // The checkpoint was stored; the release changed nothing and was not (Go HEAD).
      expect(store.codes(id)).toEqual(["runnable"]);
      expect((await env().read(id))?.code).toBe("runnable");
    });

    test("T24: a far sleep is stored and holds; a new sleep overrides it; waking stores runnable without until", async () => {
      const id = taskId("t24");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      scripted.script[0] = () => sleepMessage(new Date(Date.now() + HOUR));
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("sleeping to be stored", () => store.last(id)?.code === "sleeping");
      await staysFalse("a transition during a far sleep", () => store.count(id) > 1, 200);
      const until = new Date(Date.now() + 600);
      await env().commands("node1").send(id, sleepMessage(until));
      await waitFor("the new sleep to be stored", () => store.last(id)?.until?.getTime() === until.getTime());
      await waitFor("runnable to be stored", () => store.last(id)?.code === "runnable");
      const woke = store.writes.at(-1)!;
      expect(woke.state.until).toBeUndefined();
      expect(woke.at).toBeGreaterThanOrEqual(until.getTime());
      expect(store.codes(id)).toEqual(["sleeping", "sleeping", "runnable"]);
      running.stop();
      expect(await running.result).toBe("release");
    });

    test("T25: release while sleeping keeps sleeping with the same until (not stored: Go HEAD)", async () => {
      const id = taskId("t25");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const until = new Date(Date.now() + HOUR);
      scripted.script[0] = () => sleepMessage(until);
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("sleeping to be stored", () => store.last(id)?.code === "sleeping");
      running.stop();
      expect(await running.result).toBe("release");
      // Go's TestSleepRelease expects a second store here; HEAD skips it and so do we.
      expect(store.count(id)).toBe(1);
      const after = await env().read(id);
      expect(after?.code).toBe("sleeping");
      expect(after?.until?.getTime()).toBe(until.getTime());
    });

    test("T26: kill stores killed and finishes; running again stores nothing and finishes", async () => {
      const id = taskId("t26");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the handler to run", () => scripted.calls === 1);
      await env().commands("node1").send(id, { code: "kill" });
      expect(await running.result).toBe("done");
      expect(store.codes(id)).toEqual(["killed"]);
      const again = new ScriptedRun();
      const rerun = start(handlerFor(env(), store, again.run), id);
      expect(await rerun.result).toBe("done");
      expect(store.codes(id)).toEqual(["killed"]);
      expect(again.calls).toBe(0);
    });

    test("T27: pause holds, run resumes, pause twice is stored twice, stop leaves it paused (not stored: Go HEAD)", async () => {
      const id = taskId("t27");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const handler = handlerFor(env(), store, scripted.run);
      const running = start(handler, id);
      const commands = env().commands("node1");
      await waitFor("the handler to run", () => scripted.calls === 1);
      await commands.send(id, { code: "pause" });
      await waitFor("paused to be stored", () => store.last(id)?.code === "paused");
      expect(handler.stateOf(id)?.state.code).toBe("paused");
      await staysFalse("the machine to exit while paused", () => running.outcome(), 200);
      await commands.send(id, { code: "run" });
      await waitFor("runnable to be stored", () => store.last(id)?.code === "runnable");
      await waitFor("the handler to run again", () => scripted.calls === 2);
      await commands.send(id, { code: "pause" });
      await waitFor("paused to be stored", () => store.count(id) === 3);
      await commands.send(id, { code: "pause" });
      await waitFor("paused to be stored again", () => store.count(id) === 4);
      expect(store.codes(id)).toEqual(["paused", "runnable", "paused", "paused"]);
      running.stop();
      expect(await running.result).toBe("release");
      expect(store.count(id)).toBe(4); // Go's TestPause expects a store on stop; HEAD skips it
      expect((await env().read(id))?.code).toBe("paused");
      expect(handler.stateOf(id)).toBeUndefined();
    });
  });

  describe("beyond Go", () => {
    test("a sleeping task released by shutdown wakes at its ORIGINAL deadline on the node that re-runs it", async () => {
      const id = taskId("sleep-move");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const until = new Date(Date.now() + 2500);
      const first = new ScriptedRun();
      first.script[0] = () => sleepMessage(until);
      const node1 = start(handlerFor(env(), store, first.run, "node1"), id, "node1");
      await waitFor("sleeping to be stored", () => store.last(id)?.code === "sleeping");
      node1.stop("shutdown");
      expect(await node1.result).toBe("release");
      await waitFor("some time to pass before the other node claims it", () => Date.now() >= until.getTime() - 1500);

      await env().own(id, "node2");
      const second = new ScriptedRun();
      let wokeAt = 0;
      second.script[0] = (ctx) => {
        wokeAt = Date.now();
        return firstCommand(ctx);
      };
      const handler2 = handlerFor(env(), store, second.run, "node2");
      const node2 = start(handler2, id, "node2");
      await waitFor("node2 to load the sleep", () => handler2.stateOf(id));
      expect(handler2.stateOf(id)!.state.until?.getTime()).toBe(until.getTime());
      await waitFor("node2 to wake the task", () => second.calls === 1);
      expect(wokeAt).toBeGreaterThanOrEqual(until.getTime());
      // Had the sleep restarted on node2, it would not wake before claim time + 2.5 s.
      expect(store.last(id)?.code).toBe("runnable");
      expect(first.calls).toBe(1);
      node2.stop();
      expect(await node2.result).toBe("release");
    });

    test("a paused task stays paused across a node kill until resumed on the new node", async () => {
      const id = taskId("pause-kill");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const first = new ScriptedRun();
      const node1 = start(handlerFor(env(), store, first.run, "node1"), id, "node1");
      await waitFor("the handler to run on node1", () => first.calls === 1);
      await env().commands("node1").send(id, { code: "pause" });
      await waitFor("paused to be stored", () => store.last(id)?.code === "paused");

      // node1 dies without a word: its claim moves to node2 and node1 is never told.
      await env().own(id, "node2");
      const second = new ScriptedRun();
      const handler2 = handlerFor(env(), store, second.run, "node2");
      const node2 = start(handler2, id, "node2");
      await waitFor("node2 to load the state", () => handler2.stateOf(id));
      expect(handler2.stateOf(id)!.state.code).toBe("paused");
      await staysFalse("the handler to run while paused", () => second.calls > 0, 300);
      await env().commands("node2").send(id, { code: "run" });
      await waitFor("the handler to run on node2", () => second.calls === 1);
      expect(first.calls).toBe(1);
      expect(store.last(id)?.code).toBe("runnable");
      node2.stop();
      node1.stop();
      expect(await node2.result).toBe("release");
      expect(await node1.result).toBe("release");
    });

    test("fault retry: 3 errors per minute fails a handler that always throws after exactly 3 runs, history stored", async () => {
      const id = taskId("retry");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const always = (): never => {
        throw new Error(`attempt failed`);
      };
      scripted.script = [always, always, always, always, always];
      const policy = defaultErrorPolicy({ maxErrors: 3, window: 60_000, backoff: { initial: 20, max: 50, jitter: 0 } });
      const running = start(handlerFor(env(), store, scripted.run, "node1", policy), id);
      expect(await running.result).toBe("done");
      expect(scripted.calls).toBe(3);
      expect(store.codes(id)).toEqual([
        "fault",
        "sleeping",
        "runnable",
        "fault",
        "sleeping",
        "runnable",
        "fault",
        "failed",
      ]);
      const final = (await env().read(id))!;
      expect(final.code).toBe("failed");
      expect(final.errors?.length).toBe(4);
      for (const e of final.errors!.slice(0, 3)) {
        expect(e.error).toContain("attempt failed");
        expect(e.error).toContain("at "); // the stack is kept
      }
      expect(final.errors![3]!.error).toBe("exceeded error rate: 3 errors within 1m");
    });

    test("a command received while the task leaves the node is applied, not dropped", async () => {
      const id = taskId("drain");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      // A handler that ignores its commands and returns release when stopped.
      scripted.script[0] = (ctx) =>
        new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve("release")));
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the handler to run", () => scripted.calls === 1);
      await env().commands("node1").send(id, { code: "pause" });
      await waitFor("the listener to take the command", () => env().commandTaken(id));
      running.stop();
      expect(await running.result).toBe("release");
      expect(store.codes(id)).toEqual(["paused"]);
    });

    test("after a lost claim, commands already received are not written (another node may own the task)", async () => {
      const id = taskId("lost");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      scripted.script[0] = (ctx) =>
        new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve("release")));
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the handler to run", () => scripted.calls === 1);
      await env().commands("node1").send(id, { code: "pause" });
      await waitFor("the listener to take the command", () => env().commandTaken(id));
      running.stop("lost");
      expect(await running.result).toBe("release");
      expect(store.count(id)).toBe(0);
      expect((await env().read(id))?.code).toBe("runnable");
    });

    test("a task stopped before it starts never runs its handler and leaves a waiting command for the next owner", async () => {
      const id = taskId("prestopped");
      await seed(id, { code: "runnable" });
      await env().commands("node1").send(id, { code: "pause" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const { ctx, stop } = makeContext(id);
      stop("shutdown");
      expect(await handlerFor(env(), store, scripted.run).run({ id, props: {} }, ctx)).toBe("release");
      expect(scripted.calls).toBe(0);
      expect(store.count(id)).toBe(0);
      expect(await env().commandTaken(id)).toBe(false);
    });

    test("a handler stopped by its abort signal throwing is a release, not a fault", async () => {
      const id = taskId("abort-throw");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      scripted.script[0] = (ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the handler to run", () => scripted.calls === 1);
      running.stop();
      expect(await running.result).toBe("release");
      expect(store.count(id)).toBe(0);
    });

    test("a thrown error becomes a fault whose history holds the stack", async () => {
      const id = taskId("throw");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      scripted.script[0] = () => {
        throw new TypeError("kaput");
      };
      const running = start(handlerFor(env(), store, scripted.run), id);
      await waitFor("the fault to be stored", () => store.count(id) >= 2);
      expect(store.codes(id).slice(0, 2)).toEqual(["fault", "sleeping"]); // default policy: retry later
      const error = store.writes[0]!.state.errors!.at(-1)!.error;
      expect(error).toContain("TypeError: kaput");
      expect(error).toContain("contract.ts");
      running.stop();
      expect(await running.result).toBe("release");
    });

    test("a failing store write releases the task for a retry (StateStoreError) and never finishes it", async () => {
      const id = taskId("store-fail");
      await seed(id, { code: "runnable" });
      const store = new RecordingStore(env().store);
      store.failStores = true;
      const scripted = new ScriptedRun();
      scripted.script[0] = () => "complete";
      const running = start(handlerFor(env(), store, scripted.run), id);
      const error = await running.result.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StateStoreError);
      expect((error as StateStoreError).operation).toBe("store");
      expect((await env().read(id))?.code).toBe("runnable");
    });

    test("a failing state load rejects with StateStoreError and runs nothing", async () => {
      const id = taskId("load-fail");
      const failing = new RecordingStore(env().store);
      failing.load = () => Promise.reject(new Error("etcd unavailable"));
      const scripted = new ScriptedRun();
      const running = start(handlerFor(env(), failing, scripted.run), id);
      const error = await running.result.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StateStoreError);
      expect((error as Error).message).toContain("etcd unavailable");
      expect(scripted.calls).toBe(0);
    });

    test("a task never seen before is runnable, recorded on first load", async () => {
      const id = taskId("fresh");
      await env().own(id, "node1");
      expect(await env().read(id)).toBeUndefined();
      const scripted = new ScriptedRun();
      const handler = handlerFor(env(), env().store, scripted.run);
      const running = start(handler, id);
      await waitFor("the handler to run", () => scripted.calls === 1);
      expect((await env().read(id))?.code).toBe("runnable");
      const snapshot = handler.stateOf(id)!;
      expect(snapshot.state.code).toBe("runnable");
      expect(snapshot.since.getTime()).toBeLessThanOrEqual(Date.now());
      running.stop();
      expect(await running.result).toBe("release");
    });

    test("a sleeping task wakes on a run command before its deadline", async () => {
      const id = taskId("wake");
      await seed(id, { code: "sleeping", until: new Date(Date.now() + HOUR) });
      const store = new RecordingStore(env().store);
      const scripted = new ScriptedRun();
      const running = start(handlerFor(env(), store, scripted.run), id);
      await env().commands("node1").send(id, { code: "run" });
      await waitFor("the handler to run", () => scripted.calls === 1);
      expect(store.codes(id)).toEqual(["runnable"]);
      running.stop();
      expect(await running.result).toBe("release");
    });
  });
}
