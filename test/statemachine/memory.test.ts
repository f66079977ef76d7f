/** The state machine contract on the memory state store and memory task commands. */
import { describe, expect, test } from "bun:test";
import { MemoryTaskCommands } from "../../src/coordinators/memory/commander.ts";
import { MemoryStateStore } from "../../src/coordinators/memory/state-store.ts";
import type { Message, State } from "../../src/statemachine/types.ts";
import { staysFalse, waitFor } from "../support/wait.ts";
import { runnerContract } from "./contract.ts";
import type { MachineEnv } from "./support.ts";

function memoryEnv(): MachineEnv {
  const store = new MemoryStateStore();
  const commands = new MemoryTaskCommands();
  return {
    name: "memory",
    store,
    read: async (id) => store.get(id),
    commands: () => commands,
    own: async () => {},
    commandTaken: async (id) => commands.pending(id) === undefined,
  };
}

const env = memoryEnv();
describe("state machine on the memory store", () => runnerContract(() => env));

describe("MemoryStateStore", () => {
  test("snapshot round-trips every state through Go's JSON shape, and onChange sees each write", async () => {
    const changes: Array<[string, State]> = [];
    const store = new MemoryStateStore({ onChange: (id, s) => changes.push([id, s]) });
    const until = new Date("2026-11-22T14:40:02.540Z");
    await store.store("a", {
      code: "sleeping",
      until,
      errors: [{ timestamp: new Date("2026-11-22T14:30:02.540Z"), error: "boom" }],
    });
    await store.store("b", { code: "completed" });
    expect(await store.load("c")).toEqual({ code: "runnable" });
    expect(changes.map(([id, s]) => `${id}:${s.code}`)).toEqual(["a:sleeping", "b:completed", "c:runnable"]);
    const snap = store.snapshot();
    expect(snap).toEqual({
      a: {
        state: "sleeping",
        until: "2026-11-22T14:40:02.54Z",
        errors: [{ timestamp: "2026-11-22T14:30:02.54Z", error: "boom" }],
      },
      b: { state: "completed" },
      c: { state: "runnable" },
    });
    const restored = new MemoryStateStore({ snapshot: JSON.parse(JSON.stringify(snap)) });
    expect(restored.get("a")?.until?.getTime()).toBe(until.getTime());
    expect(await restored.load("b")).toEqual({ code: "completed" });
    expect(restored.delete("b")).toBe(true);
    expect(restored.get("b")).toBeUndefined();
  });

  test("a snapshot with an invalid entry is rejected with the task named", () => {
    expect(() => new MemoryStateStore({ snapshot: { t9: { state: "dozing" } } })).toThrow(/task "t9".*dozing/);
  });
});

describe("MemoryTaskCommands", () => {
  test("single slot: the last command sent before the listener starts wins (as etcd, Go T42)", async () => {
    const commands = new MemoryTaskCommands();
    await commands.send("t", { code: "pause" });
    await commands.send("t", { code: "kill" });
    const controller = new AbortController();
    const got: Message[] = [];
    const done = (async () => {
      for await (const m of commands.listen("t", controller.signal)) got.push(m);
    })();
    await waitFor("the kill", () => got.length === 1);
    expect(got[0]!.code).toBe("kill");
    await staysFalse("another command", () => got.length > 1, 200);
    controller.abort();
    await done;
    await commands.send("t", { code: "run" });
    expect(got.length).toBe(1);
    expect(commands.pending("t")?.code).toBe("run"); // kept for the next listener
  });

  test("only the most recent listener of a task takes commands; when it ends the older one takes over", async () => {
    const commands = new MemoryTaskCommands();
    const old = new AbortController();
    const newer = new AbortController();
    const gotOld: Message[] = [];
    const gotNew: Message[] = [];
    const a = (async () => {
      for await (const m of commands.listen("t", old.signal)) gotOld.push(m);
    })();
    const b = (async () => {
      for await (const m of commands.listen("t", newer.signal)) gotNew.push(m);
    })();
    await commands.send("t", { code: "pause" });
    await waitFor("the newer listener to take it", () => gotNew.length === 1);
    expect(gotOld).toEqual([]);
    newer.abort();
    await b;
    await commands.send("t", { code: "run" });
    await waitFor("the older listener to take it", () => gotOld.length === 1);
    old.abort();
    await a;
  });

  test("an invalid command is refused with the reason", async () => {
    const commands = new MemoryTaskCommands();
    await expect(commands.send("t", { code: "sleep" })).rejects.toThrow(/task "t".*needs an until/);
    await expect(commands.send("t", { code: "nap" } as unknown as Message)).rejects.toThrow(/unknown message code/);
  });
});
